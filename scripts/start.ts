// The quick start: the whole system with embedded defaults, as separate processes (docs/design.md §1):
// a private redis-server (unless REDIS_URL or REDIS_SENTINELS says where Redis is), the API, one worker, filesystem storage under
// ./var/storage and the bundled offline package set. Ctrl-C stops all of it. The roles run compiled,
// as in production: `npm run build` runs first when dist/ is missing or older than the sources.
// scripts/start.sh installs what is missing first; run that (`npm start`), not this file.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { withOfflineNixConfig } from './offline-nix.js';
import { BUILD_STAMPS, REPO_ROOT, buildProblem, startRedis, startRole, waitForHttp, type Started } from './stack.js';

const env = withOfflineNixConfig({ ...process.env });
let redis: Started | undefined;
const roles: Started[] = [];

async function main(): Promise<void> {
  const stale = buildProblem();
  if (stale !== undefined) {
    process.stderr.write(`nixyard: building (${stale})\n`);
    const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
    if (build.status !== 0) {
      // tsc emits and stamps dist/ even when it reports errors: unstamp it, so the next start builds again.
      for (const stamp of BUILD_STAMPS) rmSync(join(REPO_ROOT, stamp), { force: true });
      throw new Error(`npm run build failed (${build.error?.message ?? build.signal ?? `exit ${build.status}`})`);
    }
  }
  if (!env.REDIS_URL && !env.REDIS_SENTINELS) {
    const server = await startRedis(join(REPO_ROOT, 'var', 'redis'));
    redis = server;
    env.REDIS_URL = server.url;
  }
  if (!env.NIXERY_CHANNEL && !env.NIXERY_PKGS_REPO && !env.NIXERY_PKGS_PATH) {
    env.NIXERY_PKGS_PATH = join(REPO_ROOT, 'examples', 'pkgs');
  }
  env.STORAGE_PATH ??= join(REPO_ROOT, 'var', 'storage');
  env.PORT ??= '8080';
  // The admin API (prebuilds) needs a token; a fresh one per run unless one is given.
  env.NIXYARD_ADMIN_TOKEN ??= randomBytes(24).toString('base64url');
  // The worker shares this machine with the API: its builds leave the API a CPU where there are
  // two or more (docs/operations.md, "Builds yield to serving").
  if (availableParallelism() >= 2) env.NIXYARD_WORKER_SPARE_CPUS ??= '1';

  const api = startRole('api', { env, compiled: true });
  const worker = startRole('worker', { env, compiled: true });
  roles.push(api, worker);
  for (const role of [api, worker]) {
    role.child.once('exit', (code, signal) => {
      if (!stopping) void shutdown(`a process exited unexpectedly (${signal ?? code})`, 1);
    });
  }
  await waitForHttp(`http://127.0.0.1:${env.PORT}/v2/`, 60_000, api.child);

  const host = `localhost:${env.PORT}`;
  process.stdout.write(
    [
      '',
      `Nixyard is serving on http://${host}/ (packages: ${env.NIXERY_PKGS_PATH ?? env.NIXERY_PKGS_REPO ?? env.NIXERY_CHANNEL})`,
      'Pull an image, for example:',
      `  skopeo copy --src-tls-verify=false docker://${host}/shell/jq:latest oci:jq-image:latest`,
      `  docker pull ${host}/hello`,
      `Status page: http://${host}/   Metrics: http://${host}/metrics`,
      'Prebuild a batch of images with the admin token of this run:',
      `  NIXYARD_URL=http://${host} NIXYARD_ADMIN_TOKEN=${env.NIXYARD_ADMIN_TOKEN} npx nixyard prebuild images.txt`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
}

let stopping = false;
async function shutdown(reason: string, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`\nnixyard: stopping (${reason})\n`);
  // Roles first (they finish in-flight work), Redis last.
  await Promise.all(roles.map((p) => p.stop()));
  await redis?.stop();
  process.exit(code);
}

process.on('SIGINT', () => void shutdown('interrupted', 0));
process.on('SIGTERM', () => void shutdown('terminated', 0));
main().catch((err: unknown) => {
  process.stderr.write(`nixyard: ${err instanceof Error ? err.message : String(err)}\n`);
  void shutdown('start-up failed', 1);
});
