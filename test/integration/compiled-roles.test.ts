// The roles as production runs them: `npm run build` (tsc -b) in a copy of the repository's sources,
// then, as in the Dockerfiles' runtime stage, nothing but the compiled dist/ directories and the
// production dependencies (`npm ci --omit=dev`, taken from package-lock.json's dev flags): no
// TypeScript sources, no tsx. The compiled API must answer GET /v2/ with 200 (and load the modules
// it defers when first asked) and the compiled worker must report ready against a private Redis; the compiled CLI must run from its bin. A build that
// fails, a dist/ that imports a source file or a development dependency, or package exports that
// point at the wrong place all fail here.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, freePort } from '../../scripts/stack.js';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { startTestRedis, type TestRedis } from '../helpers/redis.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const WORKSPACES = ['packages/core', 'apps/api', 'apps/worker', 'apps/cli'];

/** What `npm run build` reads: the root's configuration and each workspace's manifest, config and src/. */
function copySources(tree: string): void {
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.base.json', 'tsconfig.build.json']) {
    cpSync(join(REPO_ROOT, file), join(tree, file));
  }
  for (const workspace of WORKSPACES) {
    for (const entry of ['package.json', 'tsconfig.build.json', 'src']) {
      cpSync(join(REPO_ROOT, workspace, entry), join(tree, workspace, entry), { recursive: true });
    }
  }
  // Not compiled, used at run time: the worker's Nix expression and the CLI's executable.
  cpSync(join(REPO_ROOT, 'apps/worker/nix'), join(tree, 'apps/worker/nix'), { recursive: true });
  cpSync(join(REPO_ROOT, 'apps/cli/bin'), join(tree, 'apps/cli/bin'), { recursive: true });
}

/**
 * A node_modules for `tree` made of links into the repository's: every installed package, or only
 * those that `npm ci --omit=dev` installs; the workspaces link to the tree's own copies, as npm does.
 */
function linkNodeModules(tree: string, production: boolean): void {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; link?: boolean }>;
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // Top-level packages, and those a workspace holds in a node_modules of its own.
    const match = /^((?:packages|apps)\/[^/]+\/)?node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(path);
    if (!match || (production && entry.dev)) continue;
    const name = match[2]!;
    const target = name.startsWith('@nixyard/') ? join(tree, WORKSPACES.find((w) => w.endsWith(name.slice(9)))!) : join(REPO_ROOT, path);
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    symlinkSync(target, join(tree, path));
  }
  if (!production) symlinkSync(join(REPO_ROOT, 'node_modules/.bin'), join(tree, 'node_modules/.bin'));
}

async function waitForStatus(url: string, status: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = 'no answer';
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before ${url} answered ${status}:\n${output()}`);
    }
    try {
      const response = await fetch(url);
      last = `${response.status}`;
      if (response.status === status) return;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer ${status} within 20 s (last: ${last}):\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the compiled roles (npm run build, production dependencies only)', { timeout: 60_000 }, () => {
  const dir = tempDir('compiled');
  const tree = join(dir.path, 'tree');
  let redis: TestRedis;
  const children: ChildProcess[] = [];

  function startCompiled(role: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
    const baseEnv: NodeJS.ProcessEnv = { ...process.env };
    delete baseEnv.NODE_OPTIONS; // nothing may sneak a loader in
    const child = spawn(process.execPath, [join(tree, 'apps', role, 'dist', 'main.js')], {
      cwd: tree,
      env: {
        ...baseEnv,
        REDIS_URL: redis.url,
        STORAGE_PATH: join(dir.path, 'storage'),
        NIXERY_PKGS_PATH: BUNDLED_SET,
        LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let text = '';
    for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
    return { child, output: () => text };
  }

  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await redis?.stop();
    dir.cleanup();
  });

  test('npm run build compiles every workspace into its dist/', async () => {
    copySources(tree);
    linkNodeModules(tree, false);
    await run('npm', ['run', '--silent', 'build'], { cwd: tree, timeout: 45_000 });
    for (const file of ['packages/core/dist/index.js', 'packages/core/dist/index.d.ts', 'apps/api/dist/main.js', 'apps/worker/dist/main.js', 'apps/cli/dist/main.js']) {
      assert.ok(existsSync(join(tree, file)), `${file} was not built`);
    }

    // The runtime stage: dist/ and manifests only, production dependencies only.
    for (const workspace of WORKSPACES) rmSync(join(tree, workspace, 'src'), { recursive: true });
    renameSync(join(tree, 'node_modules'), join(dir.path, 'build-node_modules'));
    for (const workspace of WORKSPACES) rmSync(join(tree, workspace, 'node_modules'), { recursive: true, force: true });
    linkNodeModules(tree, true);
    assert.ok(existsSync(join(tree, 'node_modules/bullmq')), 'a production dependency is missing');
    assert.ok(!existsSync(join(tree, 'node_modules/tsx')), 'tsx must be a development dependency only');
    assert.ok(!existsSync(join(tree, 'node_modules/typescript')), 'typescript must be a development dependency only');
  });

  test('the compiled API answers GET /v2/ with 200, and loads its Redis side when /readyz first asks', async () => {
    const port = await freePort();
    const api = startCompiled('api', { PORT: String(port) });
    await waitForStatus(`http://127.0.0.1:${port}/v2/`, 200, api.child, api.output);
    // Only this test's own connection: serving /v2/ opened none (main.ts loads farm.ts on first need).
    const probe = redis.client();
    const clients = async () => String(await probe.client('LIST')).trim().split('\n').length;
    assert.equal(await clients(), 1);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { redis: 'ok', storage: 'ok' } });
    assert.ok((await clients()) > 2, 'the farm opened its connections');
    assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /^nixyard_queue_jobs\{system="x86_64-linux",state="waiting"\} 0$/m);
  });

  test('the compiled worker reports ready', async () => {
    const port = await freePort();
    const worker = startCompiled('worker', { NIXYARD_WORKER_METRICS_PORT: String(port) });
    await waitForStatus(`http://127.0.0.1:${port}/readyz`, 200, worker.child, worker.output);
  });

  test('the CLI runs its compiled output from its bin', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_OPTIONS;
    const { stdout } = await run(process.execPath, [join(tree, 'apps/cli/bin/nixyard.mjs'), '--help'], { cwd: dir.path, env, timeout: 20_000 });
    assert.match(stdout, /^Usage: nixyard/m);
    assert.deepEqual(readdirSync(join(tree, 'apps/cli')).sort(), ['bin', 'dist', 'package.json', 'tsconfig.build.json']);
  });
});
