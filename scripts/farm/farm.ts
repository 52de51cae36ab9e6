// A whole Nixyard farm on one machine, for people and for tests (test/farm/): each host a network
// namespace on one bridge, with its own address, running the deployable roles as separate
// processes (topology.ts). `farmUp` returns once everything is ready and leaves the farm running
// with no process of its own (what it made is recorded in the state directory); `farmDown` removes
// every namespace, link and process of the farm, from that record or, when the record is gone,
// by the farm's name prefix, so a crashed `up` leaves nothing behind either. The handle `farmUp`
// returns also cuts and restores a host's link and kills and restarts processes, for chaos tests.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BUILD_STAMPS, REPO_ROOT, buildProblem } from '../stack.js';
import { composeProxySysctls } from '../nginx-config.js';
import { createNetwork, assertSubnetFree, deleteLink, deleteNamespace, farmLinks, farmNamespaces, linkIsUp, setLink, setSysctls } from './netns.js';
import { emptyNamespace, inNamespace, isRunning, launch, logTail, stopGroup } from './processes.js';
import { probeFor, waitReady } from './readiness.js';
import { prepareProcess, processEnv, sharedStorage, type RoleContext } from './roles.js';
import { DEFAULT_STATE_DIR, freshStateDir, readState, removeStateDir, writeState, type FarmHost, type FarmProcess, type FarmState } from './state.js';
import { DEFAULT_PREFIX, HOSTS, PROCESSES, SENTINEL_NAME, addressing, sentinelList, type Addressing, type ProcessRole } from './topology.js';

export type { FarmHost, FarmProcess, FarmState } from './state.js';
export { DEFAULT_STATE_DIR } from './state.js';
export { DEFAULT_PREFIX, DEFAULT_SUBNET } from './topology.js';

/** The bundled offline package set (examples/pkgs), as the quick start and the tests use it. */
const BUNDLED_SET = join(REPO_ROOT, 'examples/pkgs');

export interface FarmOptions {
  /** Where the farm's record, logs, storage and files go (default /tmp/nixyard-farm). */
  stateDir?: string;
  /** Of every namespace and link (default `nxy-`). */
  prefix?: string;
  /** A private /24 for the hosts (default 10.213.80.0/24). */
  subnet?: string;
  /**
   * How the API and workers run: `compiled` (`npm run build`'s dist/), `tsx` (the sources), or
   * `auto` (default): compiled when the build is current, else after `npm run build` (unless
   * `build` is false), else, when that fails, through tsx.
   */
  roles?: 'auto' | 'compiled' | 'tsx';
  build?: boolean;
  /** Prometheus' scrape and evaluation interval (default 5 s; the compose file has 15 s). */
  scrapeIntervalSeconds?: number;
  /**
   * The package set every API and worker uses (NIXERY_PKGS_PATH; default the bundled offline set,
   * examples/pkgs, which is prepared in any case). Tests give a set of their own that imports the
   * bundled one and adds packages, such as builds that wait until the test lets them finish.
   */
  packages?: string;
  /** Extra variables for every API and worker, and for the APIs or the workers alone. */
  env?: Record<string, string>;
  apiEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
  /** How long `up` may take once the network is made (default 110 s). */
  timeoutMs?: number;
  /** Progress lines (the CLI prints them; tests may ignore them). */
  log?: (line: string) => void;
  /** Aborting stops `up` and removes what it made. */
  signal?: AbortSignal;
}

export interface Farm extends FarmState {
  host(name: string): FarmHost;
  process(name: string): FarmProcess;
  /** Cuts a host off the bridge (`ip link set <veth> down`): its processes run on, unreachable. */
  cutLink(host: string): void;
  restoreLink(host: string): void;
  /** Signals the process's group (default SIGTERM, SIGKILL after `graceMs`) and waits for it to exit. */
  kill(name: string, signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** Starts a process that is not running, as `up` did; resolves once it is ready. */
  start(name: string, timeoutMs?: number): Promise<FarmProcess>;
  /** kill (SIGTERM) then start. */
  restart(name: string, timeoutMs?: number): Promise<FarmProcess>;
  /** Undefined when the process is ready, else why not. */
  notReady(name: string): Promise<string | undefined>;
  waitReady(name: string, timeoutMs?: number): Promise<void>;
  down(options?: DownOptions): Promise<DownReport>;
}

export interface DownOptions {
  /** Keep the state directory (logs, storage); by default it is removed. */
  keepFiles?: boolean;
  /** How long processes get after SIGTERM before SIGKILL (default 15 s). */
  graceMs?: number;
}

export interface DownReport {
  namespaces: string[];
  links: string[];
}

const PROMETHEUS_TARGETS = PROCESSES.filter((p) => p.role === 'api' || p.role === 'worker' || p.role === 'prometheus').length;

function checkPrivileges(): void {
  if (process.getuid?.() !== 0) throw new Error('the farm makes network namespaces: run it as root');
}

/** The programs the farm runs, each with an argument that only prints its version. */
const TOOLS: ReadonlyArray<[string, string[]]> = [
  ['ip', ['-V']],
  ['sysctl', ['--version']],
  ['redis-server', ['--version']],
  ['nginx', ['-v']],
  ['prometheus', ['--version']],
];

/** Installs the farm's Debian packages when one of its programs is missing (as `npm start` does its own). */
function ensureTools(log: (line: string) => void): void {
  const missing = () => TOOLS.filter(([tool, args]) => spawnSync(tool, args, { stdio: 'ignore' }).error !== undefined).map(([tool]) => tool);
  if (missing().length === 0) return;
  log(`${missing().join(', ')} missing: bash scripts/install-system-packages.sh --farm`);
  execFileSync('bash', [join(REPO_ROOT, 'scripts/install-system-packages.sh'), '--farm'], { stdio: ['ignore', 2, 2] });
  const still = missing();
  if (still.length > 0) throw new Error(`still missing after installing the farm's packages: ${still.join(', ')}`);
}

function chooseRunner(options: FarmOptions, log: (line: string) => void): 'compiled' | 'tsx' {
  const mode = options.roles ?? 'auto';
  if (mode === 'tsx') return 'tsx';
  const stale = buildProblem();
  if (stale === undefined) return 'compiled';
  if (mode === 'auto' && options.build === false) {
    log(`running the roles' sources through tsx: ${stale}`);
    return 'tsx';
  }
  log(`building the roles with \`npm run build\` (${stale})`);
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 2, 2] });
  if (build.status === 0) return 'compiled';
  // tsc emits and stamps dist/ even when it reports errors: unstamp it, so the next start builds again.
  for (const stamp of BUILD_STAMPS) rmSync(join(REPO_ROOT, stamp), { force: true });
  if (mode === 'compiled') throw new Error('npm run build failed');
  log("npm run build failed: running the roles' sources through tsx instead");
  return 'tsx';
}

/** Groups started together, each waited for before the next: Redis, Sentinels, roles, front. */
const TIERS: ProcessRole[][] = [['redis-primary', 'redis-replica'], ['sentinel'], ['api', 'worker'], ['proxy', 'prometheus']];

export async function farmUp(options: FarmOptions = {}): Promise<Farm> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const stateDir = resolve(options.stateDir ?? DEFAULT_STATE_DIR);
  const net = addressing(options.prefix, options.subnet);
  checkPrivileges();
  ensureTools(log);
  const leftovers = [...new Set([...farmNamespaces(net.prefix), ...farmLinks(net.prefix)])];
  if (leftovers.length > 0) {
    throw new Error(`a farm is up or was left behind (${leftovers.join(', ')}): run \`npm run farm -- down\` first`);
  }
  assertSubnetFree(net);
  const runner = chooseRunner(options, log);
  execFileSync('bash', [join(BUNDLED_SET, 'prepare.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });

  freshStateDir(stateDir);
  const ctx: RoleContext = {
    net,
    stateDir,
    storagePath: sharedStorage(stateDir),
    packages: resolve(options.packages ?? BUNDLED_SET),
    adminToken: randomBytes(24).toString('base64url'),
    runner,
    scrapeIntervalSeconds: options.scrapeIntervalSeconds ?? 5,
    env: options.env ?? {},
    apiEnv: options.apiEnv ?? {},
    workerEnv: options.workerEnv ?? {},
  };
  const proxy = PROCESSES.find((p) => p.role === 'proxy')!;
  const prometheus = PROCESSES.find((p) => p.role === 'prometheus')!;
  const state: FarmState = {
    version: 1,
    stateDir,
    prefix: net.prefix,
    subnet: net.subnet,
    bridge: net.bridge,
    rootAddress: net.rootAddress,
    storagePath: ctx.storagePath,
    packages: ctx.packages,
    redisSentinels: sentinelList(net),
    redisSentinelName: SENTINEL_NAME,
    adminToken: ctx.adminToken,
    registry: `${net.address(proxy.host)}:${proxy.port}`,
    prometheusUrl: `http://${net.address(prometheus.host)}:${prometheus.port}`,
    roles: runner,
    startedAt: new Date().toISOString(),
    hosts: HOSTS.map((h) => ({ name: h.name, address: net.address(h.name), namespace: net.namespace(h.name), veth: net.veth(h.name) })),
    processes: [],
  };
  // Recorded before anything is made, so that `down` knows the farm from here on.
  writeState(state);
  const farm = handle(state, net);
  try {
    const abortCheck = () => {
      if (options.signal?.aborted) throw new Error('interrupted');
    };
    mkdirSync(join(stateDir, 'logs'));
    state.processes = PROCESSES.map((spec) => prepareProcess(spec, ctx));
    writeState(state);
    createNetwork(net);
    // The proxy's TCP timeouts, as the compose file gives its container (ops/nginx/nginx.conf).
    setSysctls(net, 'proxy', composeProxySysctls());
    log(`network: bridge ${net.bridge} (${net.rootAddress}), ${HOSTS.length} namespaces on ${net.subnet}`);
    const deadline = Date.now() + (options.timeoutMs ?? 110_000);
    for (const tier of TIERS) {
      abortCheck();
      const procs = state.processes.filter((p) => tier.includes(p.role));
      for (const proc of procs) await startProcess(net, proc);
      writeState(state);
      await Promise.all(procs.map((proc) => readyOrExplain(proc, deadline - Date.now(), options.signal)));
      log(`ready: ${procs.map((p) => p.name).join(', ')} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
    return farm;
  } catch (err) {
    log(`up failed: removing what it made (logs kept in ${join(stateDir, 'logs')})`);
    await farmDown(state, { keepFiles: true, graceMs: 2_000 });
    throw err;
  }
}

async function startProcess(net: Addressing, proc: FarmProcess): Promise<void> {
  proc.pid = await launch({ namespace: net.namespace(proc.host), argv: proc.argv, env: processEnv(proc), cwd: REPO_ROOT, log: proc.log });
}

function running(net: Addressing, proc: FarmProcess): boolean {
  return proc.pid > 0 && isRunning(proc.pid) && inNamespace(proc.pid, net.namespace(proc.host));
}

async function readyOrExplain(proc: FarmProcess, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  try {
    await waitReady(`${proc.name} (${proc.address}:${proc.port})`, probeFor(proc, PROMETHEUS_TARGETS), Math.max(timeoutMs, 1_000), () => {
      if (signal?.aborted) throw new Error('interrupted');
      // Not `running`: for a moment after the spawn, `ip netns exec` has not entered the namespace yet.
      return isRunning(proc.pid);
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new Error(`${(err as Error).message}\n--- ${proc.log} (last lines) ---\n${logTail(proc.log)}`);
  }
}

function handle(state: FarmState, net: Addressing): Farm {
  const find = (name: string) => {
    const proc = state.processes.find((p) => p.name === name);
    if (!proc) throw new Error(`no farm process ${JSON.stringify(name)} (processes: ${state.processes.map((p) => p.name).join(', ')})`);
    return proc;
  };
  const farm: Farm = Object.assign(state, {
    host(name: string) {
      const host = state.hosts.find((h) => h.name === name);
      if (!host) throw new Error(`no farm host ${JSON.stringify(name)} (hosts: ${state.hosts.map((h) => h.name).join(', ')})`);
      return host;
    },
    process: find,
    cutLink: (host: string) => setLink(net, host, 'down'),
    restoreLink: (host: string) => setLink(net, host, 'up'),
    async kill(name: string, signal: NodeJS.Signals = 'SIGTERM', graceMs?: number) {
      const proc = find(name);
      await stopGroup(proc.pid, net.namespace(proc.host), signal, graceMs);
    },
    async start(name: string, timeoutMs = 60_000) {
      const proc = find(name);
      if (running(net, proc)) throw new Error(`${name} is running (pid ${proc.pid})`);
      await startProcess(net, proc);
      writeState(state);
      await readyOrExplain(proc, timeoutMs);
      return proc;
    },
    async restart(name: string, timeoutMs?: number) {
      await farm.kill(name);
      return farm.start(name, timeoutMs);
    },
    notReady: (name: string) => probeFor(find(name), PROMETHEUS_TARGETS)().catch((err: unknown) => (err instanceof Error ? err.message : String(err))),
    waitReady: (name: string, timeoutMs = 60_000) => readyOrExplain(find(name), timeoutMs),
    down: (options?: DownOptions) => farmDown(state, options),
  }) as unknown as Farm;
  return farm;
}

/** A handle on a farm that is up, from its state directory (another process made it). */
export function openFarm(stateDir = DEFAULT_STATE_DIR): Farm {
  const state = readState(resolve(stateDir));
  if (!state) throw new Error(`no farm recorded in ${stateDir}`);
  return handle(state, addressing(state.prefix, state.subnet));
}

/**
 * Removes the farm: every process in its namespaces (the roles first, Redis last; SIGTERM, then
 * SIGKILL after `graceMs`), the namespaces, its links and, unless `keepFiles`, its state directory.
 * Idempotent; without a record (or with a partial one) it goes by the name prefix.
 */
export async function farmDown(target: FarmState | { stateDir?: string; prefix?: string } = {}, options: DownOptions = {}): Promise<DownReport> {
  checkPrivileges();
  const stateDir = resolve(target.stateDir ?? DEFAULT_STATE_DIR);
  const state = 'processes' in target ? target : readState(stateDir);
  const prefix = state?.prefix ?? target.prefix ?? DEFAULT_PREFIX;
  const namespaces = farmNamespaces(prefix);
  // Front first, Redis last: by the latest start tier of each host's processes, unknown hosts first.
  const tierOf = (ns: string) => {
    const tiers = PROCESSES.filter((p) => prefix + p.host === ns).map((p) => TIERS.findIndex((t) => t.includes(p.role)));
    return tiers.length === 0 ? Infinity : Math.max(...tiers);
  };
  for (const tier of [...new Set(namespaces.map(tierOf))].sort((a, b) => b - a)) {
    const group = namespaces.filter((ns) => tierOf(ns) === tier);
    await Promise.all(group.map((ns) => emptyNamespace(ns, options.graceMs ?? 15_000)));
  }
  const links = farmLinks(prefix);
  for (const ns of namespaces) deleteNamespace(ns);
  // Deleting a namespace deletes its veth pair, in the background; the bridge is left to delete.
  for (const link of farmLinks(prefix)) deleteLink(link);
  const deadline = Date.now() + 10_000;
  while (farmLinks(prefix).length > 0 || farmNamespaces(prefix).length > 0) {
    if (Date.now() > deadline) throw new Error(`still there after down: ${[...farmNamespaces(prefix), ...farmLinks(prefix)].join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!options.keepFiles) removeStateDir(stateDir);
  return { namespaces, links };
}

export interface StatusRow {
  process: string;
  host: string;
  address: string;
  role: ProcessRole;
  port: number;
  pid: number;
  running: boolean;
  /** Undefined when ready, else why not. */
  notReady: string | undefined;
  link: 'up' | 'down' | 'missing';
}

/** Each process of the recorded farm: running, ready, and its host's link. */
export async function farmStatus(stateDir = DEFAULT_STATE_DIR): Promise<{ state: FarmState; rows: StatusRow[] } | undefined> {
  const state = readState(resolve(stateDir));
  if (!state) return undefined;
  const net = addressing(state.prefix, state.subnet);
  const rows = await Promise.all(
    state.processes.map(async (proc): Promise<StatusRow> => {
      const alive = running(net, proc);
      const linkUp = linkIsUp(net.veth(proc.host));
      return {
        process: proc.name,
        host: proc.host,
        address: proc.address,
        role: proc.role,
        port: proc.port,
        pid: proc.pid,
        running: alive,
        notReady: alive ? await probeFor(proc, PROMETHEUS_TARGETS)().catch((err: unknown) => (err as Error).message) : 'not running',
        link: linkUp === undefined ? 'missing' : linkUp ? 'up' : 'down',
      };
    }),
  );
  return { state, rows };
}
