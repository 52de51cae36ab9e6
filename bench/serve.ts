// npm run bench:serve — how fast Nixyard serves pulls, side by side with distribution 2.8.2
// (Debian's docker-registry), the goals of issue 12 printed with their ratios.
//
// It installs nothing (`bash scripts/install-system-packages.sh --bench` does). It starts, on free
// loopback ports with their own temp storage: a private Redis, the Nixyard API (compiled,
// `node apps/api/dist/main.js`, as deployed; LOG_LEVEL=info), a worker that builds `large` from the
// bundled offline set (a real image whose main layer is 64 MiB of incompressible data), and
// distribution with Debian's configuration minus its htpasswd auth. skopeo copies the image into
// distribution with --preserve-digests, so both serve the same bytes under the same digests.
// Behind the proxy: a second API with NIXYARD_BLOB_ACCEL_PREFIX and Debian's nginx running
// ops/nginx/nginx.conf (test/helpers/nginx.ts substitutes the addresses).
//
// Then, in interleaved rounds (Nixyard, distribution, Nixyard behind nginx, for every figure of a
// round), wrk measures blob GETs at 4 and 256 connections and warm manifests by tag and by digest
// at 32, while /proc gives each server's peak RSS and CPU time; plus API start-up to the first 200
// on /v2/, idle RSS and RSS once the API's Redis side is loaded (by /readyz and /metrics), the
// access log's cost (two APIs used only for it, LOG_LEVEL=info against silent) and whether all
// 256 blob streams make progress. Each line prints the median over rounds and [min–max].
//
//   npm run bench:serve                      3 rounds, about 7 minutes on a quiet machine
//   npm run bench:serve -- --rounds 5
//   npm run bench:serve -- --quick           1 round, short runs: checks the set-up, not the figures
//   npm run bench:serve -- --no-proxy        without nginx

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, buildProblem, freePort, startRedis, startRole, type Role } from '../scripts/stack.js';
import { withOfflineNixConfig } from '../scripts/offline-nix.js';
import { BUNDLED_SET, prepareBundledSet } from '../test/helpers/bundled-set.js';
import { BLOB_ACCEL_PREFIX, startNginx } from '../test/helpers/nginx.js';
import { WRK_REPORT_SCRIPT, startWrk, type WrkReport } from './wrk.js';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
function flag(name: string): boolean {
  return argv.includes(name);
}
function option(name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) usage(`${name} takes a whole number >= 1`);
  return value;
}
function usage(problem: string): never {
  console.error(`bench:serve: ${problem}\nusage: npm run bench:serve -- [--rounds N] [--quick] [--no-proxy]`);
  process.exit(2);
}
for (const arg of argv) {
  if (arg.startsWith('--') && !['--rounds', '--quick', '--no-proxy'].includes(arg)) usage(`unknown option ${arg}`);
}
const QUICK = flag('--quick');
const ROUNDS = option('--rounds', QUICK ? 1 : 3);
const PROXY = !flag('--no-proxy');
/** wrk run lengths in seconds. */
const SECONDS = QUICK ? { blob: 2, blob256: 4, manifest: 2 } : { blob: 5, blob256: 15, manifest: 5 };
const IMAGE = 'large';
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

// ---------------------------------------------------------------------------------------------
// Processes and clean-up (also on Ctrl-C)

interface Proc {
  name: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const cleanups: Array<() => Promise<void> | void> = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`bench:serve: clean-up: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\nbench:serve: ${signal}, stopping everything`);
    void cleanUp().finally(() => process.exit(130));
  });
}

function track(name: string, child: ChildProcess): Proc {
  const exited = new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once('exit', () => done());
  });
  const proc: Proc = {
    name,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  cleanups.push(() => proc.stop());
  return proc;
}

function tempRoot(): string {
  const path = mkdtempSync(join(tmpdir(), 'nixyard-bench-serve-'));
  // nginx's workers (user nobody) read the storage below it.
  chmodSync(path, 0o755);
  cleanups.push(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor200(url: string, proc: Proc, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited before ${url} answered`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(5);
  }
}

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Resident set size in bytes (VmRSS), 0 once the process is gone. */
function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** User + system CPU seconds the process has used. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// Servers

interface Server {
  label: string;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** The process whose RSS and CPU the figures report (for Nixyard, the API). */
  pid: () => number;
  /** More processes whose CPU is reported separately (nginx's workers). */
  helperPids?: () => number[];
}

type Runner = 'compiled' | 'tsx';

function startNode(name: string, runner: Runner, role: Role, env: NodeJS.ProcessEnv): Proc {
  return track(name, startRole(role, { env, stdio: 'ignore', compiled: runner === 'compiled' }).child);
}

function distributionConfig(dir: string, storage: string, port: number): string {
  // Debian's /etc/docker/registry/config.yml without its htpasswd auth.
  const path = join(dir, `config-${port}.yml`);
  writeFileSync(
    path,
    [
      'version: 0.1',
      'log:',
      '  fields:',
      '    service: registry',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  filesystem:',
      `    rootdirectory: ${storage}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      'health:',
      '  storagedriver:',
      '    enabled: true',
      '    interval: 10s',
      '    threshold: 3',
      '',
    ].join('\n'),
  );
  return path;
}

function startDistribution(name: string, config: string): Proc {
  return track(name, spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'ignore'] }));
}

// ---------------------------------------------------------------------------------------------
// Load: wrk, and the 256-stream progress check

function runWrk(url: string, connections: number, seconds: number, headers: string[] = []): Promise<WrkReport> {
  const args = ['-t', '2', '-c', String(connections), '-d', `${seconds}s`, '--timeout', '60s', '--latency', '-s', WRK_REPORT_SCRIPT];
  for (const header of headers) args.push('-H', header);
  args.push(url);
  const run = startWrk(args);
  cleanups.push(run.kill);
  return run.report.finally(() => cleanups.splice(cleanups.indexOf(run.kill), 1));
}

interface Measurement {
  /** MiB/s read by the clients (partial bodies included). */
  mibps: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  completed: number;
  errors: number;
  peakRssMB: number;
  /** CPU seconds of the server process per GiB sent. */
  cpuPerGiB: number;
  /** The same for the helper processes (nginx), if any. */
  helperCpuPerGiB: number;
}

async function measure(server: Server, path: string, connections: number, seconds: number, headers: string[] = []): Promise<Measurement> {
  const pid = server.pid();
  const helpers = server.helperPids?.() ?? [];
  let peak = rssBytes(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
  const cpu0 = cpuSeconds(pid);
  const helperCpu0 = sum(helpers.map(cpuSeconds));
  try {
    const report = await runWrk(`${server.base}${path}`, connections, seconds, headers);
    const cpu = cpuSeconds(pid) - cpu0;
    const helperCpu = sum(helpers.map(cpuSeconds)) - helperCpu0;
    const duration = report.durationUs / 1e6;
    const gib = report.bytes / 2 ** 30;
    return {
      mibps: report.bytes / 2 ** 20 / duration,
      rps: report.requests / duration,
      // Latency is of completed requests; none completed (a 64 MiB blob at 256 streams) is no figure.
      p50ms: report.requests > 0 ? report.p50Us / 1000 : NaN,
      p99ms: report.requests > 0 ? report.p99Us / 1000 : NaN,
      completed: report.requests,
      errors: report.connectErrors + report.readErrors + report.writeErrors + report.statusErrors + report.timeouts,
      peakRssMB: Math.max(peak, rssBytes(pid)) / 1e6,
      cpuPerGiB: gib > 0 ? cpu / gib : NaN,
      helperCpuPerGiB: gib > 0 ? helperCpu / gib : NaN,
    };
  } finally {
    clearInterval(sampler);
  }
}

interface Progress {
  streams: number;
  /** Streams that received bytes during the window. */
  progressing: number;
  /** Streams that received bytes in every second of it. */
  steady: number;
  /** The slowest stream's rate over the window. */
  minMiBps: number;
}

const RAMP_UP_MS = 2000;

/**
 * `streams` concurrent downloads of `path`, each on its own connection and starting over when
 * done; after two seconds of ramp-up (every connection opened), counts each stream's bytes in
 * each second of `seconds`. A stream makes progress if it received bytes in the window.
 */
async function streamProgress(server: Server, path: string, streams: number, seconds: number): Promise<Progress> {
  const url = new URL(`${server.base}${path}`);
  const windows = Array.from({ length: streams }, () => new Array<number>(seconds + 1).fill(0));
  const totals = new Array<number>(streams).fill(0);
  let second = -1; // -1: ramp-up
  let done = false;
  const agents: Agent[] = [];
  const run = (i: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const next = () => {
      if (done) return;
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent }, (res) => {
        res.on('data', (chunk: Buffer) => {
          if (second >= 0 && second < seconds) {
            windows[i]![second]! += chunk.length;
            totals[i]! += chunk.length;
          }
        });
        res.on('end', next);
        res.on('error', () => undefined);
      });
      req.on('error', () => (done ? undefined : setTimeout(next, 10)));
      req.end();
    };
    next();
  };
  for (let i = 0; i < streams; i++) run(i);
  await sleep(RAMP_UP_MS);
  for (second = 0; second < seconds; second++) await sleep(1000);
  done = true;
  for (const agent of agents) agent.destroy();
  const perStream = totals.map((bytes) => bytes / 2 ** 20 / seconds).sort((a, b) => a - b);
  return {
    streams,
    progressing: totals.filter((bytes) => bytes > 0).length,
    steady: windows.filter((w) => w.slice(0, seconds).every((bytes) => bytes > 0)).length,
    minMiBps: perStream[0] ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Start-up and idle RSS

interface Startup {
  seconds: number;
  idleRssMB: number;
  /** RSS 2 s after the `wake` requests: for Nixyard, once its Redis side is loaded (farm.ts). */
  wokenRssMB: number;
  /** Processes the server started (tsx's esbuild service, say). */
  helpers: number;
}

async function measureStartup(start: () => Proc, url: string, wake: string[]): Promise<Startup> {
  const begun = performance.now();
  const proc = start();
  try {
    await waitFor200(url, proc, 30_000);
    const seconds = (performance.now() - begun) / 1000;
    await sleep(2000);
    const pid = proc.child.pid!;
    const rss = () => rssBytes(pid) + sum(childPids(pid).map(rssBytes));
    const idleRssMB = rss() / 1e6;
    const helpers = childPids(pid).length;
    for (const woken of wake) await (await fetch(woken, { signal: AbortSignal.timeout(10_000) })).arrayBuffer();
    await sleep(2000);
    return { seconds, idleRssMB, wokenRssMB: rss() / 1e6, helpers };
  } finally {
    await proc.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The report

interface Figure {
  name: string;
  unit: string;
  /** Nixyard's value and the reference's (distribution's, unless the name says otherwise), per round. */
  a: number[];
  b: number[];
  goal?: { text: string; pass: (a: number, b: number, ratio: number) => boolean };
  digits?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function fmt(x: number, digits: number): string {
  if (!Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function spread(xs: number[], digits: number): string {
  if (xs.every(Number.isNaN)) return '–';
  const med = fmt(median(xs), digits);
  if (xs.length < 2) return med;
  return `${med} [${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)}]`;
}

function printFigures(figures: Figure[]): number {
  const rows = [['figure', 'nixyard', 'distribution', 'ratio', 'goal', 'result']];
  let failed = 0;
  for (const f of figures) {
    const digits = f.digits ?? 0;
    const ratios = f.a.map((a, i) => a / f.b[i]!);
    const ratio = median(ratios);
    let result = '';
    if (f.goal) {
      const pass = f.goal.pass(median(f.a), median(f.b), ratio);
      result = pass ? 'pass' : 'FAIL';
      if (!pass) failed++;
    }
    rows.push([
      `${f.name} (${f.unit})`,
      spread(f.a, digits),
      f.b.every(Number.isNaN) ? '–' : spread(f.b, digits),
      ratios.some(Number.isFinite) ? `${spread(ratios.filter(Number.isFinite), 2)}×` : '–',
      f.goal?.text ?? '',
      result,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
  return failed;
}

// ---------------------------------------------------------------------------------------------

function requireTools(): void {
  const has = (tool: string) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
      return true;
    } catch {
      return false;
    }
  };
  const bench = ['docker-registry', 'wrk', ...(PROXY ? ['nginx'] : [])].filter((t) => !has(t));
  const base = ['redis-server', 'skopeo', 'nix-build'].filter((t) => !has(t));
  if (bench.length || base.length) {
    const missing = [...bench, ...base];
    console.error(`bench:serve: missing ${missing.join(', ')}: run \`bash scripts/install-system-packages.sh --bench\` (as root) first`);
    process.exit(1);
  }
}

/** The compiled roles, built first when missing or older than their source; tsx if that fails. */
function compiledRunner(): Runner {
  if (buildProblem() !== undefined) {
    console.error(`bench:serve: ${buildProblem()}: compiling the roles (npm run build)`);
    try {
      execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    } catch {
      // reported below
    }
  }
  const problem = buildProblem();
  if (problem === undefined) return 'compiled';
  console.error(`bench:serve: no current compiled API (${problem}); measuring the tsx one instead`);
  return 'tsx';
}

async function main(): Promise<void> {
  const begun = performance.now();
  const loadBefore = loadavg()[0]!;
  requireTools();
  const runner = compiledRunner();
  prepareBundledSet();
  const root = tempRoot();
  const storagePath = join(root, 'nixyard-storage');
  mkdirSync(storagePath, { mode: 0o755 });
  const redis = await startRedis(join(root, 'redis'));
  cleanups.push(() => redis.stop());

  const env = withOfflineNixConfig({
    ...process.env,
    REDIS_URL: redis.url,
    NIXERY_STORAGE_BACKEND: 'filesystem',
    STORAGE_PATH: storagePath,
    NIXERY_PKGS_PATH: BUNDLED_SET,
    NIX_TIMEOUT: '600',
    LOG_LEVEL: 'info',
  });
  const apiEnv = (port: number, extra: Record<string, string> = {}) => ({ ...env, PORT: String(port), ...extra });

  // Nixyard, and the image built by a real worker.
  const apiPort = await freePort();
  const api = startNode('nixyard api', runner, 'api', apiEnv(apiPort));
  const nixyard: Server = { label: 'nixyard', base: `http://127.0.0.1:${apiPort}`, pid: () => api.child.pid! };
  await waitFor200(`${nixyard.base}/v2/`, api);
  const metricsPort = await freePort();
  const worker = startNode('nixyard worker', runner, 'worker', { ...env, NIXYARD_WORKER_METRICS_PORT: String(metricsPort) });
  await waitFor200(`http://127.0.0.1:${metricsPort}/healthz`, worker);
  console.error(`bench:serve: building ${IMAGE} from the bundled set`);
  const built = await fetch(`${nixyard.base}/v2/${IMAGE}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(600_000) });
  const manifestBytes = Buffer.from(await built.arrayBuffer());
  if (built.status !== 200) throw new Error(`building ${IMAGE}: ${built.status} ${manifestBytes.toString()}`);
  await worker.stop();
  const manifestDigest = built.headers.get('docker-content-digest')!;
  const manifest = JSON.parse(manifestBytes.toString()) as { layers: Array<{ digest: string; size: number }> };
  const layer = [...manifest.layers].sort((x, y) => y.size - x.size)[0]!;
  const blobPath = `/v2/${IMAGE}/blobs/${layer.digest}`;

  // distribution, with the same image under the same digests.
  const distDir = join(root, 'distribution');
  mkdirSync(distDir);
  const distPort = await freePort();
  const dist = startDistribution('distribution', distributionConfig(distDir, join(distDir, 'storage'), distPort));
  const distribution: Server = { label: 'distribution', base: `http://127.0.0.1:${distPort}`, pid: () => dist.child.pid! };
  await waitFor200(`${distribution.base}/v2/`, dist);
  console.error('bench:serve: copying the image to distribution (skopeo --preserve-digests)');
  execFileSync(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://127.0.0.1:${apiPort}/${IMAGE}:latest`,
      `docker://127.0.0.1:${distPort}/${IMAGE}:latest`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  for (const path of [`/v2/${IMAGE}/manifests/latest`, `/v2/${IMAGE}/manifests/${manifestDigest}`]) {
    const res = await fetch(`${distribution.base}${path}`, { headers: { Accept: MANIFEST_ACCEPT } });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || !bytes.equals(manifestBytes)) throw new Error(`distribution serves another manifest at ${path} (${res.status})`);
  }
  const distBlob = await fetch(`${distribution.base}${blobPath}`, { method: 'HEAD' });
  if (distBlob.status !== 200 || Number(distBlob.headers.get('content-length')) !== layer.size) throw new Error('distribution lacks the layer');

  // The access log's cost: two APIs that serve nothing but this comparison, one without access
  // logs, so that neither carries the other figures' heap (the main API's hot blobs) into it.
  const startLogComparison = async (label: string, logLevel: string): Promise<Server> => {
    const port = await freePort();
    const api = startNode(`nixyard api (${label})`, runner, 'api', apiEnv(port, { LOG_LEVEL: logLevel }));
    const server: Server = { label: `nixyard ${label}`, base: `http://127.0.0.1:${port}`, pid: () => api.child.pid! };
    await waitFor200(`${server.base}/v2/`, api);
    return server;
  };
  const logged = await startLogComparison('logged', 'info');
  const silent = await startLogComparison('silent', 'silent');

  // Behind the proxy: an API that hands blobs to nginx, and nginx with the deployable configuration.
  let proxied: Server | undefined;
  if (PROXY) {
    const accelPort = await freePort();
    const accelApi = startNode('nixyard api (accel)', runner, 'api', apiEnv(accelPort, { NIXYARD_BLOB_ACCEL_PREFIX: BLOB_ACCEL_PREFIX }));
    await waitFor200(`http://127.0.0.1:${accelPort}/v2/`, accelApi);
    const nginx = await startNginx({ upstreams: [`127.0.0.1:${accelPort}`, `127.0.0.1:${accelPort}`], storagePath });
    cleanups.push(() => nginx.stop());
    proxied = { label: 'nixyard behind nginx', base: nginx.url, pid: () => accelApi.child.pid!, helperPids: () => nginx.workerPids() };
    const res = await fetch(`${proxied.base}${blobPath}`, { method: 'GET', headers: { Range: 'bytes=0-0' } });
    await res.arrayBuffer();
    if (res.status !== 206 || res.headers.get('docker-content-digest') !== layer.digest) throw new Error(`the proxy does not serve the layer (${res.status})`);
  }

  const accept = [`Accept: ${MANIFEST_ACCEPT}`];
  const tagPath = `/v2/${IMAGE}/manifests/latest`;
  const digestPath = `/v2/${IMAGE}/manifests/${manifestDigest}`;

  console.error(
    `bench:serve: ${ROUNDS} round(s): blob ${(layer.size / 2 ** 20).toFixed(1)} MiB at c4 (${SECONDS.blob} s) and c256 (${SECONDS.blob256} s), ` +
      `manifests at c32 (${SECONDS.manifest} s), start-up; API ${runner === 'compiled' ? 'compiled' : 'on tsx (NOT compiled)'}`,
  );
  // Warm-up, not recorded: JIT, caches, the page cache.
  for (const server of [nixyard, distribution, logged, silent, ...(proxied ? [proxied] : [])]) {
    await runWrk(`${server.base}${tagPath}`, 8, 1, accept);
    await runWrk(`${server.base}${digestPath}`, 8, 1, accept);
    if (server !== silent && server !== logged) await runWrk(`${server.base}${blobPath}`, 4, 1);
  }

  const rounds: Array<Record<string, Measurement | Startup>> = [];
  const nixStartPort = await freePort();
  const distStartPort = await freePort();
  const distStartConfig = distributionConfig(distDir, join(distDir, 'storage'), distStartPort);
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`bench:serve: round ${round}/${ROUNDS}`);
    const r: Record<string, Measurement | Startup> = {};
    const nixStart = `http://127.0.0.1:${nixStartPort}`;
    const distStart = `http://127.0.0.1:${distStartPort}`;
    r.startNixyard = await measureStartup(() => startNode('nixyard api (start-up)', runner, 'api', apiEnv(nixStartPort)), `${nixStart}/v2/`, [
      `${nixStart}/readyz`,
      `${nixStart}/metrics`,
    ]);
    r.startDistribution = await measureStartup(() => startDistribution('distribution (start-up)', distStartConfig), `${distStart}/v2/`, [
      `${distStart}/v2/${IMAGE}/manifests/latest`,
    ]);
    r.blob4 = await measure(nixyard, blobPath, 4, SECONDS.blob);
    r.blob4Dist = await measure(distribution, blobPath, 4, SECONDS.blob);
    if (proxied) r.blob4Proxy = await measure(proxied, blobPath, 4, SECONDS.blob);
    r.blob256 = await measure(nixyard, blobPath, 256, SECONDS.blob256);
    r.blob256Dist = await measure(distribution, blobPath, 256, SECONDS.blob256);
    if (proxied) r.blob256Proxy = await measure(proxied, blobPath, 256, SECONDS.blob256);
    r.tag = await measure(nixyard, tagPath, 32, SECONDS.manifest, accept);
    r.tagDist = await measure(distribution, tagPath, 32, SECONDS.manifest, accept);
    // Alternated between rounds, so that neither side always runs first.
    for (const side of round % 2 === 0 ? ['silent', 'logged'] : ['logged', 'silent']) {
      if (side === 'logged') r.tagLogged = await measure(logged, tagPath, 32, SECONDS.manifest, accept);
      else r.tagSilent = await measure(silent, tagPath, 32, SECONDS.manifest, accept);
    }
    r.digest = await measure(nixyard, digestPath, 32, SECONDS.manifest, accept);
    r.digestDist = await measure(distribution, digestPath, 32, SECONDS.manifest, accept);
    rounds.push(r);
  }

  console.error('bench:serve: do all 256 blob streams make progress?');
  const progressSeconds = QUICK ? 3 : 5;
  const progress = {
    nixyard: await streamProgress(nixyard, blobPath, 256, progressSeconds),
    distribution: await streamProgress(distribution, blobPath, 256, progressSeconds),
    ...(proxied ? { proxied: await streamProgress(proxied, blobPath, 256, progressSeconds) } : {}),
  };

  // ---- report
  const m = (key: string) => rounds.map((r) => r[key] as Measurement | undefined);
  const s = (key: string) => rounds.map((r) => r[key] as Startup);
  const pick = (key: string, field: keyof Measurement) => m(key).map((x) => (x ? x[field] : NaN));
  const ge = (x: number) => ({ text: `≥ ${x.toFixed(1)}×`, pass: (_a: number, _b: number, ratio: number) => ratio >= x });
  const compiledNote = runner === 'compiled' ? 'compiled' : 'tsx, NOT compiled';
  const figures: Figure[] = [
    { name: 'blob GET c4', unit: 'MiB/s', a: pick('blob4', 'mibps'), b: pick('blob4Dist', 'mibps'), goal: ge(1) },
    { name: 'blob GET c4 p50', unit: 'ms', a: pick('blob4', 'p50ms'), b: pick('blob4Dist', 'p50ms'), digits: 1 },
    { name: 'blob GET c4 p99', unit: 'ms', a: pick('blob4', 'p99ms'), b: pick('blob4Dist', 'p99ms'), digits: 1 },
    { name: 'blob GET c4 peak RSS', unit: 'MB', a: pick('blob4', 'peakRssMB'), b: pick('blob4Dist', 'peakRssMB') },
    { name: 'blob GET c256', unit: 'MiB/s', a: pick('blob256', 'mibps'), b: pick('blob256Dist', 'mibps'), goal: ge(1) },
    { name: 'blob GET c256 downloads completed', unit: 'count', a: pick('blob256', 'completed'), b: pick('blob256Dist', 'completed') },
    { name: 'blob GET c256 errors', unit: 'count', a: pick('blob256', 'errors'), b: pick('blob256Dist', 'errors'), goal: { text: '0', pass: (a) => a === 0 } },
    { name: 'blob GET c256 p50', unit: 'ms', a: pick('blob256', 'p50ms'), b: pick('blob256Dist', 'p50ms') },
    { name: 'blob GET c256 p99', unit: 'ms', a: pick('blob256', 'p99ms'), b: pick('blob256Dist', 'p99ms') },
    {
      name: 'blob GET c256 peak RSS',
      unit: 'MB',
      a: pick('blob256', 'peakRssMB'),
      b: pick('blob256Dist', 'peakRssMB'),
      goal: { text: 'API ≤ 200 MB', pass: (a) => a <= 200 },
    },
    {
      name: `blob c256 streams receiving bytes (of 256, in ${progressSeconds} s)`,
      unit: 'streams',
      a: [progress.nixyard.progressing],
      b: [progress.distribution.progressing],
      goal: { text: 'all 256', pass: (a) => a === 256 },
    },
    {
      name: `blob c256 streams receiving bytes every second`,
      unit: 'streams',
      a: [progress.nixyard.steady],
      b: [progress.distribution.steady],
    },
    {
      name: 'blob c256 slowest stream',
      unit: 'MiB/s',
      a: [progress.nixyard.minMiBps],
      b: [progress.distribution.minMiBps],
      digits: 1,
    },
    { name: 'blob GET API CPU per GiB sent, c4', unit: 's', a: pick('blob4', 'cpuPerGiB'), b: pick('blob4Dist', 'cpuPerGiB'), digits: 3 },
  ];
  if (proxied) {
    figures.push(
      { name: 'blob GET c4 behind nginx', unit: 'MiB/s', a: pick('blob4Proxy', 'mibps'), b: pick('blob4Dist', 'mibps'), goal: ge(1) },
      { name: 'blob GET c4 behind nginx p99', unit: 'ms', a: pick('blob4Proxy', 'p99ms'), b: pick('blob4Dist', 'p99ms'), digits: 1 },
      { name: 'blob GET c256 behind nginx', unit: 'MiB/s', a: pick('blob256Proxy', 'mibps'), b: pick('blob256Dist', 'mibps'), goal: ge(1) },
      {
        name: 'blob GET c256 behind nginx errors',
        unit: 'count',
        a: pick('blob256Proxy', 'errors'),
        b: pick('blob256Dist', 'errors'),
        goal: { text: '0', pass: (a) => a === 0 },
      },
      { name: 'blob GET c256 behind nginx, API peak RSS', unit: 'MB', a: pick('blob256Proxy', 'peakRssMB'), b: pick('blob256Dist', 'peakRssMB') },
      {
        name: `blob c256 behind nginx, streams receiving bytes (of 256, in ${progressSeconds} s)`,
        unit: 'streams',
        a: [progress.proxied!.progressing],
        b: [progress.distribution.progressing],
        goal: { text: 'all 256', pass: (a) => a === 256 },
      },
      {
        name: 'blob c256 behind nginx, streams receiving bytes every second',
        unit: 'streams',
        a: [progress.proxied!.steady],
        b: [progress.distribution.steady],
      },
      {
        name: 'blob c256 behind nginx, slowest stream',
        unit: 'MiB/s',
        a: [progress.proxied!.minMiBps],
        b: [progress.distribution.minMiBps],
        digits: 1,
      },
      {
        name: 'API CPU per GiB, c4: behind nginx vs direct',
        unit: 's',
        a: pick('blob4Proxy', 'cpuPerGiB'),
        b: pick('blob4', 'cpuPerGiB'),
        digits: 3,
        // "Next to no CPU on blob bytes": at most 0.05 s per GiB, 5% of a core at 1 GiB/s (less than
        // half of what nginx itself spends sending them); direct is printed beside it for scale.
        goal: { text: '≤ 0.05 s/GiB', pass: (a) => a <= 0.05 },
      },
      {
        name: 'API CPU per GiB, c256: behind nginx vs direct',
        unit: 's',
        a: pick('blob256Proxy', 'cpuPerGiB'),
        b: pick('blob256', 'cpuPerGiB'),
        digits: 3,
        // "Next to no CPU on blob bytes": at most 0.05 s per GiB, 5% of a core at 1 GiB/s (less than
        // half of what nginx itself spends sending them); direct is printed beside it for scale.
        goal: { text: '≤ 0.05 s/GiB', pass: (a) => a <= 0.05 },
      },
      { name: 'nginx CPU per GiB, c4 (vs distribution)', unit: 's', a: pick('blob4Proxy', 'helperCpuPerGiB'), b: pick('blob4Dist', 'cpuPerGiB'), digits: 3 },
    );
  }
  const fiveTimes = ge(5);
  figures.push(
    { name: 'manifest by tag c32', unit: 'req/s', a: pick('tag', 'rps'), b: pick('tagDist', 'rps'), goal: fiveTimes },
    { name: 'manifest by tag c32 p50', unit: 'ms', a: pick('tag', 'p50ms'), b: pick('tagDist', 'p50ms'), digits: 2 },
    {
      name: 'manifest by tag c32 p99',
      unit: 'ms',
      a: pick('tag', 'p99ms'),
      b: pick('tagDist', 'p99ms'),
      digits: 2,
      goal: { text: '≤ 0.5×', pass: (_a, _b, ratio) => ratio <= 0.5 },
    },
    { name: 'manifest by tag c32 peak RSS', unit: 'MB', a: pick('tag', 'peakRssMB'), b: pick('tagDist', 'peakRssMB') },
    { name: 'manifest by digest c32', unit: 'req/s', a: pick('digest', 'rps'), b: pick('digestDist', 'rps'), goal: fiveTimes },
    { name: 'manifest by digest c32 p50', unit: 'ms', a: pick('digest', 'p50ms'), b: pick('digestDist', 'p50ms'), digits: 2 },
    {
      name: 'manifest by digest c32 p99',
      unit: 'ms',
      a: pick('digest', 'p99ms'),
      b: pick('digestDist', 'p99ms'),
      digits: 2,
      goal: { text: '≤ 0.5×', pass: (_a, _b, ratio) => ratio <= 0.5 },
    },
    {
      name: 'manifest by tag c32, LOG_LEVEL=info vs silent (two fresh Nixyard APIs)',
      unit: 'req/s',
      a: pick('tagLogged', 'rps'),
      b: pick('tagSilent', 'rps'),
    },
    {
      name: `API start-up to first 200 on /v2/ (${compiledNote})`,
      unit: 's',
      a: s('startNixyard').map((x) => x.seconds),
      b: s('startDistribution').map((x) => x.seconds),
      digits: 3,
      goal: { text: '≤ 0.3 s', pass: (a) => a <= 0.3 },
    },
    {
      name: `API idle RSS, 2 s after start-up (${compiledNote})`,
      unit: 'MB',
      a: s('startNixyard').map((x) => x.idleRssMB),
      b: s('startDistribution').map((x) => x.idleRssMB),
      goal: { text: '≤ 80 MB', pass: (a) => a <= 80 },
    },
    {
      name: `API RSS once its Redis side is loaded (/readyz, /metrics; distribution: a manifest)`,
      unit: 'MB',
      a: s('startNixyard').map((x) => x.wokenRssMB),
      b: s('startDistribution').map((x) => x.wokenRssMB),
    },
  );

  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  console.log('');
  console.log(
    `bench:serve on ${availableParallelism()} cores (${cpuModel}), load average before ${loadBefore.toFixed(2)}; ` +
      `${ROUNDS} interleaved round(s), median [min–max]; blob ${layer.size} bytes (${layer.digest.slice(0, 19)}…); ` +
      `Nixyard API ${compiledNote}, LOG_LEVEL=info; distribution 2.8.2${proxied ? '; behind nginx: ops/nginx/nginx.conf on Debian nginx' : ''}`,
  );
  const helperCount = Math.max(...s('startNixyard').map((x) => x.helpers));
  if (helperCount > 0) console.log(`note: the API started ${helperCount} helper process(es), counted in its idle RSS`);
  const failed = printFigures(figures);
  const info = median(pick('tagLogged', 'rps'));
  const quiet = median(pick('tagSilent', 'rps'));
  console.log(
    `access log cost on manifests by tag: LOG_LEVEL=info serves ${fmt((1 - info / quiet) * 100, 1)}% fewer requests/s than silent (medians), ` +
      `about ${fmt((1 / info - 1 / quiet) * 1e6, 1)} µs per request`,
  );
  console.log(`${failed === 0 ? 'every goal holds' : `${failed} goal(s) not met`}; the bench took ${Math.round((performance.now() - begun) / 1000)} s`);
}

main()
  .then(() => cleanUp())
  .catch(async (err) => {
    // Interrupted: the clean-up under way made this step fail; it says so already.
    if (cleaning) return;
    console.error(`bench:serve: ${(err as Error).stack ?? err}`);
    await cleanUp();
    process.exit(1);
  });
