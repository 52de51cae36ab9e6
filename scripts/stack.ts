// Starts Nixyard's processes on this machine: a private redis-server, the API and workers.
// The quick start (`npm start`) and the end-to-end tests run the very same topology as a
// deployment (separate processes talking through Redis and shared storage), only on loopback.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
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
  /**
   * Runs the compiled role, `node apps/<role>/dist/main.js`, as production does, instead of its
   * TypeScript sources through tsx. Throws when `npm run build` has not run since the last change.
   */
  compiled?: boolean;
}

/**
 * `node --import tsx apps/<role>/src/main.ts`, or with `compiled`, `node apps/<role>/dist/main.js`;
 * configured by `env` alone.
 */
export function startRole(role: Role, options: RoleOptions): Started {
  let args = ['--import', 'tsx', join(REPO_ROOT, 'apps', role, 'src', 'main.ts')];
  if (options.compiled) {
    const problem = buildProblem();
    if (problem !== undefined) throw new Error(`cannot start the compiled ${role}: ${problem}; run \`npm run build\``);
    args = [join(REPO_ROOT, 'apps', role, 'dist', 'main.js')];
  }
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: options.env,
    stdio: ['ignore', options.stdio ?? 'inherit', options.stdio ?? 'inherit'],
  });
  return started(child);
}

/** The workspaces that `npm run build` (tsconfig.build.json) compiles, each from src/ into dist/. */
const BUILT_WORKSPACES = ['packages/core', 'apps/api', 'apps/worker', 'apps/cli'];
/** The files tsc -b stamps each build of them with (tsBuildInfoFile), relative to the repository. */
export const BUILD_STAMPS = BUILT_WORKSPACES.map((workspace) => `${workspace}/dist/.tsbuildinfo`);

/**
 * Why the output of `npm run build` under `root` is missing or out of date, or undefined when it is
 * current. tsc -b writes each workspace's dist/.tsbuildinfo when it builds it (and touches it when
 * a rebuild of @nixyard/core left it as it was), so a workspace is current when that file is newer
 * than its inputs as tsc -b sees them: its src/, its tsconfig.build.json, tsconfig.base.json and,
 * for the apps, core's src/. A few dozen stat calls: cheap enough to check on every start.
 */
export function buildProblem(root = REPO_ROOT): string | undefined {
  for (const [i, workspace] of BUILT_WORKSPACES.entries()) {
    const stamp = join(root, BUILD_STAMPS[i]!);
    if (!existsSync(stamp)) return `${workspace} has not been built`;
    const built = statSync(stamp).mtimeMs;
    const inputs = [`${workspace}/src`, `${workspace}/tsconfig.build.json`, 'tsconfig.base.json'];
    if (workspace !== 'packages/core') inputs.push('packages/core/src');
    for (const input of inputs) {
      const newer = newerThan(join(root, input), built);
      if (newer !== undefined) return `${relative(root, newer)} is newer than the build of ${workspace}`;
    }
  }
  return undefined;
}

/** The first file at or under `path` modified after `time` (ms), if any. */
function newerThan(path: string, time: number): string | undefined {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return undefined;
  if (!stat.isDirectory()) return stat.mtimeMs > time ? path : undefined;
  for (const entry of readdirSync(path)) {
    const newer = newerThan(join(path, entry), time);
    if (newer !== undefined) return newer;
  }
  return undefined;
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
