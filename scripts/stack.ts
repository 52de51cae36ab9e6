// Starts Nixyard's processes on this machine: a private redis-server, the API and workers.
// The quick start (`npm start`) and the end-to-end tests run the very same topology as a
// deployment (separate processes talking through Redis and shared storage), only on loopback.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** A port that was free a moment ago (good enough on a test machine's loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface Started {
  child: ChildProcess;
  /** Sends SIGTERM, waits for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

function started(child: ChildProcess): Started {
  const exited = new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once('exit', () => done());
  });
  return {
    child,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface RedisServer extends Started {
  url: string;
}

/** A throw-away redis-server on a free loopback port (or the one given), keeping nothing on disk. */
export async function startRedis(dir: string, port?: number): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  port ??= await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ready, fail) => {
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('Ready to accept connections')) ready();
    });
    child.once('exit', (code) => fail(new Error(`redis-server exited with ${code}: ${seen.slice(-500)}`)));
    child.once('error', fail);
  });
  child.stdout!.resume();
  return { ...started(child), url: `redis://127.0.0.1:${port}` };
}

export type Role = 'api' | 'worker';

export interface RoleOptions {
  env: NodeJS.ProcessEnv;
  /** Where the role's output goes; the default passes it through. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
}

/** `node --import tsx apps/<role>/src/main.ts`, configured by `env` alone. */
export function startRole(role: Role, options: RoleOptions): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'apps', role, 'src', 'main.ts')], {
    cwd: REPO_ROOT,
    env: options.env,
    stdio: ['ignore', options.stdio ?? 'inherit', options.stdio ?? 'inherit'],
  });
  return started(child);
}

/** Polls `url` until it answers (any status) or `timeoutMs` passes. */
export async function waitForHttp(url: string, timeoutMs = 30_000, alive?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (alive && (alive.exitCode !== null || alive.signalCode !== null)) throw new Error(`process exited before ${url} answered`);
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
