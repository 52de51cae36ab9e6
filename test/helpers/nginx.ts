// nginx running the deployable proxy configuration (ops/nginx/nginx.conf) on this machine, for the
// proxy test and `npm run bench:serve`. It reads the real file and substitutes only what differs
// from the compose topology: the replicas' addresses, the listening port, the storage directory
// and the pid file. Debian's nginx (1.22) cannot parse `resolve` in an upstream, so that parameter
// and Docker's `resolver` are left out. Every substitution must match, so a change to the file
// that this helper does not understand fails loudly instead of testing something else.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, freePort, type Started } from '../../scripts/stack.js';
import { tempDir } from './temp-dir.js';

export const NGINX_CONF = join(REPO_ROOT, 'ops/nginx/nginx.conf');
/** The API replicas' STORAGE_PATH in docker-compose.yml, which the proxy mounts at the same path. */
export const COMPOSE_STORAGE_PATH = '/var/lib/nixyard/storage';
/** NIXYARD_BLOB_ACCEL_PREFIX in docker-compose.yml, the proxy's internal storage location. */
export const BLOB_ACCEL_PREFIX = '/_nixyard/storage/';

export interface NginxOptions {
  /** The API replicas, `host:port` each, in place of the compose file's servers. */
  upstreams: string[];
  /** The storage directory the API uses, in place of the compose volume's mount point. */
  storagePath: string;
  /** Where nginx listens on loopback (default: a free port). */
  port?: number;
}

export interface SubstitutionOptions {
  upstreams: string[];
  storagePath: string;
  port: number;
  pidFile: string;
}

function replaceOnce(text: string, pattern: RegExp, replacement: string | ((...m: string[]) => string), what: string): string {
  const found = text.match(new RegExp(pattern.source, pattern.flags.replace('g', '') + 'g'));
  if (!found || found.length !== 1) {
    throw new Error(`ops/nginx/nginx.conf: expected exactly one ${what} (${pattern}), found ${found?.length ?? 0}`);
  }
  return text.replace(pattern, replacement as string);
}

/** The compose proxy configuration with this machine's addresses: what the test and bench run. */
export function localNginxConfig(source: string, options: SubstitutionOptions): string {
  if (options.upstreams.length === 0) throw new Error('nginx needs at least one upstream');
  if (!options.storagePath.startsWith('/')) throw new Error('storagePath must be absolute');
  let conf = source;
  conf = replaceOnce(conf, /^(\s*)pid\s+[^;]+;/m, `$1pid ${options.pidFile};`, 'pid directive');
  // Docker's embedded DNS; the upstream below gets fixed addresses instead.
  conf = replaceOnce(conf, /^\s*resolver\s+[^;]+;[^\n]*\n/m, '', 'resolver directive');
  conf = replaceOnce(
    conf,
    /(upstream\s+nixyard_api\s*\{)([^}]*)\}/,
    (_all: string, open: string, body: string) => {
      const servers = [...body.matchAll(/^(\s*)server\s+\S+((?:\s+[^\s;]+)*)\s*;[^\n]*\n/gm)];
      const first = servers[0];
      if (!first) throw new Error('ops/nginx/nginx.conf: the nixyard_api upstream has no server line');
      const indent = first[1]!.replace(/^[\r\n]+/, '');
      const params = first[2]!.split(/\s+/).filter((p) => p !== '' && p !== 'resolve').join(' ');
      const lines = options.upstreams.map((address) => `${indent}server ${address}${params ? ` ${params}` : ''};\n`).join('');
      let placed = false;
      // The first server line becomes the given ones, in its place; the others go.
      const replaced = body.replace(/^[ \t]*server\s+[^;]+;[^\n]*\n/gm, () => (placed ? '' : ((placed = true), lines)));
      return `${open}${replaced}}`;
    },
    'nixyard_api upstream',
  );
  conf = replaceOnce(conf, /^(\s*)listen\s+8080\s*;/m, `$1listen 127.0.0.1:${options.port};`, '`listen 8080`');
  const storage = options.storagePath.endsWith('/') ? options.storagePath : `${options.storagePath}/`;
  conf = replaceOnce(conf, /(\salias\s+)\/var\/lib\/nixyard\/storage\/;/, `$1${storage};`, `alias of ${COMPOSE_STORAGE_PATH}/`);
  const directives = conf.replace(/#[^\n]*/g, '');
  if (/\bresolver?\b/.test(directives)) throw new Error('ops/nginx/nginx.conf: a `resolve` this helper did not substitute is left');
  return conf;
}

export interface RunningNginx extends Started {
  /** `127.0.0.1:<port>` */
  host: string;
  url: string;
  /** The configuration nginx runs, as written to its temp dir. */
  configPath: string;
  /** nginx's stdout (the access log) and stderr (the error log), until stop(). */
  accessLogPath: string;
  errorLogPath: string;
  /** The master process; nginx's workers are its children. */
  pid: number;
  /** The worker processes' pids (read from /proc). */
  workerPids(): number[];
}

/**
 * Starts `nginx -p <tmp> -c <tmp>/nginx.conf -g 'daemon off;'` as a child and waits until it
 * answers. The storage directory must be readable by nginx's workers (`nobody` when started as
 * root), as the compose volume must be for the nginx image's user.
 */
export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  const dir = tempDir('nginx');
  const port = options.port ?? (await freePort());
  const configPath = join(dir.path, 'nginx.conf');
  let child: ChildProcess | undefined;
  try {
    writeFileSync(
      configPath,
      localNginxConfig(readFileSync(NGINX_CONF, 'utf8'), {
        upstreams: options.upstreams,
        storagePath: options.storagePath,
        port,
        pidFile: join(dir.path, 'nginx.pid'),
      }),
    );
    // The configuration logs to /dev/stdout and /dev/stderr, which nginx opens by name: that
    // fails on a socket (what Node's 'pipe' is), so both go to files in the temp dir.
    const accessLog = openSync(join(dir.path, 'access.log'), 'a');
    const errorLog = openSync(join(dir.path, 'error.log'), 'a');
    try {
      child = spawn('nginx', ['-p', `${dir.path}/`, '-c', configPath, '-g', 'daemon off;'], { stdio: ['ignore', accessLog, errorLog] });
    } finally {
      closeSync(accessLog);
      closeSync(errorLog);
    }
    const spawned = child;
    const exited = new Promise<void>((done) => spawned.once('exit', () => done()));
    let spawnError = '';
    spawned.once('error', (err) => (spawnError = String(err)));
    try {
      await waitUntilListening(port, spawned);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${spawnError}${readFileSync(join(dir.path, 'error.log'), 'utf8').slice(-4000)}`);
    }
    return {
      child: spawned,
      host: `127.0.0.1:${port}`,
      url: `http://127.0.0.1:${port}`,
      configPath,
      accessLogPath: join(dir.path, 'access.log'),
      errorLogPath: join(dir.path, 'error.log'),
      pid: spawned.pid!,
      workerPids: () => childPids(spawned.pid!),
      async stop(graceMs = 10_000) {
        if (spawned.exitCode === null && spawned.signalCode === null) {
          // SIGQUIT: graceful shutdown (SIGTERM is nginx's fast one); SIGKILL after the grace.
          spawned.kill('SIGQUIT');
          const timer = setTimeout(() => spawned.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        dir.cleanup();
      },
    };
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    dir.cleanup();
    throw err;
  }
}

async function waitUntilListening(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited with ${child.exitCode ?? child.signalCode} before listening`);
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Direct children of `pid`, from /proc (Linux). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
