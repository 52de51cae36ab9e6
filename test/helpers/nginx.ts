// nginx running the deployable proxy configuration (ops/nginx/nginx.conf) on this machine, for the
// proxy test and `npm run bench:serve`. It reads the real file with only what differs from the
// compose topology substituted (scripts/nginx-config.ts, which the farm shares): the replicas'
// addresses, the listening port, the storage directory and the pid file.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NGINX_CONF, localNginxConfig } from '../../scripts/nginx-config.js';
import { freePort, type Started } from '../../scripts/stack.js';
import { tempDir } from './temp-dir.js';

export { BLOB_ACCEL_PREFIX, COMPOSE_STORAGE_PATH, NGINX_CONF, localNginxConfig, type SubstitutionOptions } from '../../scripts/nginx-config.js';

export interface NginxOptions {
  /** The API replicas, `host:port` each, in place of the compose file's servers. */
  upstreams: string[];
  /** The storage directory the API uses, in place of the compose volume's mount point. */
  storagePath: string;
  /** Where nginx listens on loopback (default: a free port). */
  port?: number;
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
