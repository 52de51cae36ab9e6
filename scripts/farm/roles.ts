// What each farm process runs: its argv, its environment (configured as docker-compose.yml
// configures the role, with the farm's addresses), and the files it reads (the Sentinels'
// configurations, nginx's and Prometheus'), written into the state directory. Every process binds
// its host's address only: HOST for the API, NIXYARD_WORKER_METRICS_HOST for workers, `--bind`
// and `bind` for Redis and Sentinel, nginx's `listen`, Prometheus' --web.listen-address.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOB_ACCEL_PREFIX, NGINX_CONF, localNginxConfig } from '../nginx-config.js';
import { withOfflineNixConfig } from '../offline-nix.js';
import { REPO_ROOT } from '../stack.js';
import { PROMETHEUS_CONF, farmPrometheusConfig } from './prometheus-config.js';
import type { FarmProcess } from './state.js';
import { API_SYSTEMS, PORTS, PROCESSES, SENTINEL_NAME, sentinelList, type Addressing, type ProcessSpec } from './topology.js';

export interface RoleContext {
  net: Addressing;
  stateDir: string;
  storagePath: string;
  /** NIXERY_PKGS_PATH */
  packages: string;
  adminToken: string;
  runner: 'compiled' | 'tsx';
  scrapeIntervalSeconds: number;
  /** Extra variables for every API and worker, then for the APIs or the workers alone. */
  env: Record<string, string>;
  apiEnv: Record<string, string>;
  workerEnv: Record<string, string>;
}

/**
 * The variables the roles read (packages/core/src/config.ts) are the farm's to set: the same names
 * in the environment of whoever starts the farm (a REDIS_URL, say) are not passed on.
 */
const CONFIG_VARIABLE = /^(REDIS_|NIXYARD_|NIXERY_|NIX_TIMEOUT$|NIX_POPULARITY_URL$|NIX_CONFIG$|STORAGE_PATH$|S3_|AWS_|PORT$|HOST$|LOG_LEVEL$)/;

/** The environment a farm process starts with: the caller's, without role configuration, plus the farm's. */
export function processEnv(proc: FarmProcess, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) if (!CONFIG_VARIABLE.test(name)) env[name] = value;
  return { ...env, ...proc.env };
}

/** `node apps/<role>/dist/main.js`, or the sources through tsx: as scripts/stack.ts startRole runs them. */
function nodeRole(role: 'api' | 'worker', runner: 'compiled' | 'tsx'): string[] {
  return runner === 'compiled'
    ? [process.execPath, join(REPO_ROOT, 'apps', role, 'dist', 'main.js')]
    : [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'apps', role, 'src', 'main.ts')];
}

function dir(ctx: RoleContext, name: string): string {
  const path = join(ctx.stateDir, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function sharedRoleEnv(ctx: RoleContext): Record<string, string> {
  return {
    LOG_LEVEL: 'info',
    REDIS_SENTINELS: sentinelList(ctx.net),
    REDIS_SENTINEL_NAME: SENTINEL_NAME,
    NIXERY_STORAGE_BACKEND: 'filesystem',
    STORAGE_PATH: ctx.storagePath,
    NIXERY_PKGS_PATH: ctx.packages,
    NIX_TIMEOUT: '600',
    NIX_CONFIG: withOfflineNixConfig({}).NIX_CONFIG!,
    // Short, so that `down` is quick; compose gives minutes.
    NIXYARD_SHUTDOWN_GRACE_SECONDS: '10',
    ...ctx.env,
  };
}

function addresses(ctx: RoleContext, role: ProcessSpec['role']): string[] {
  return PROCESSES.filter((p) => p.role === role).map((p) => `${ctx.net.address(p.host)}:${p.port}`);
}

/**
 * The process's launch description; writes the configuration files it reads. Run once per farm:
 * a restart runs the same argv, and Sentinels keep the configuration they have rewritten since.
 */
export function prepareProcess(spec: ProcessSpec, ctx: RoleContext): FarmProcess {
  const address = ctx.net.address(spec.host);
  const proc: FarmProcess = {
    name: spec.name,
    host: spec.host,
    role: spec.role,
    address,
    port: spec.port,
    pid: 0,
    log: join(ctx.stateDir, 'logs', `${spec.name}.log`),
    argv: [],
    env: {},
  };
  const primary = ctx.net.address(PROCESSES.find((p) => p.role === 'redis-primary')!.host);
  switch (spec.role) {
    case 'redis-primary':
    case 'redis-replica':
      // Protected mode would refuse every host but this one: the farm's network is this machine's own.
      // A replica syncs at once rather than after the default 5 s wait for more replicas.
      proc.argv = ['redis-server', '--bind', address, '--port', String(spec.port), '--protected-mode', 'no'];
      proc.argv.push('--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', dir(ctx, spec.name));
      if (spec.role === 'redis-replica') proc.argv.push('--replicaof', primary, String(PORTS.redis));
      break;
    case 'sentinel': {
      const conf = join(dir(ctx, spec.name), 'sentinel.conf');
      // Sentinel rewrites this file as it learns the topology. Failovers in seconds, not minutes.
      writeFileSync(
        conf,
        [
          `port ${spec.port}`,
          `bind ${address}`,
          'protected-mode no',
          `sentinel announce-ip ${address}`,
          `dir ${dir(ctx, spec.name)}`,
          `sentinel monitor ${SENTINEL_NAME} ${primary} ${PORTS.redis} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_NAME} 2000`,
          `sentinel failover-timeout ${SENTINEL_NAME} 10000`,
          `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
          '',
        ].join('\n'),
      );
      proc.argv = ['redis-server', conf, '--sentinel'];
      break;
    }
    case 'api':
      proc.argv = nodeRole('api', ctx.runner);
      proc.env = {
        ...sharedRoleEnv(ctx),
        HOST: address,
        PORT: String(spec.port),
        NIXYARD_SYSTEMS: API_SYSTEMS.join(','),
        NIXYARD_INDEX_SYSTEMS: API_SYSTEMS.join(','),
        NIXYARD_TRUSTED_PROXIES: ctx.net.address('proxy'),
        NIXYARD_BLOB_ACCEL_PREFIX: BLOB_ACCEL_PREFIX,
        NIXYARD_ADMIN_TOKEN: ctx.adminToken,
        ...ctx.apiEnv,
      };
      break;
    case 'worker': {
      const systems = spec.systems ?? ['x86_64-linux'];
      const env = sharedRoleEnv(ctx);
      proc.argv = nodeRole('worker', ctx.runner);
      proc.env = {
        ...env,
        NIXYARD_SYSTEMS: systems.join(','),
        NIXYARD_WORKER_METRICS_HOST: address,
        NIXYARD_WORKER_METRICS_PORT: String(spec.port),
        NIXYARD_WORKER_CONCURRENCY: '1',
        // The test-only route to aarch64 on this x86_64 machine (test/e2e/systems.test.ts).
        ...(systems.includes('aarch64-linux') ? { NIX_CONFIG: `extra-platforms = aarch64-linux\n${env.NIX_CONFIG}` } : {}),
        ...ctx.workerEnv,
      };
      break;
    }
    case 'proxy': {
      const home = dir(ctx, spec.name);
      const conf = join(home, 'nginx.conf');
      writeFileSync(
        conf,
        localNginxConfig(readFileSync(NGINX_CONF, 'utf8'), {
          upstreams: addresses(ctx, 'api'),
          storagePath: ctx.storagePath,
          listenAddress: address,
          port: spec.port,
          pidFile: join(home, 'nginx.pid'),
        }),
      );
      // The configuration logs to /dev/stdout and /dev/stderr: the process's log file.
      proc.argv = ['nginx', '-p', `${home}/`, '-c', conf, '-g', 'daemon off;'];
      break;
    }
    case 'prometheus': {
      const home = dir(ctx, spec.name);
      const conf = join(home, 'prometheus.yml');
      writeFileSync(
        conf,
        farmPrometheusConfig(readFileSync(PROMETHEUS_CONF, 'utf8'), {
          targets: { api: addresses(ctx, 'api'), worker: addresses(ctx, 'worker'), prometheus: `${address}:${spec.port}` },
          scrapeIntervalSeconds: ctx.scrapeIntervalSeconds,
        }),
      );
      proc.argv = [
        'prometheus',
        `--config.file=${conf}`,
        `--storage.tsdb.path=${join(home, 'data')}`,
        `--web.listen-address=${address}:${spec.port}`,
        '--web.enable-lifecycle',
      ];
      break;
    }
  }
  return proc;
}

/** The shared storage: one directory every host uses, readable by nginx's unprivileged workers. */
export function sharedStorage(stateDir: string): string {
  const path = join(stateDir, 'storage');
  mkdirSync(path, { recursive: true });
  chmodSync(path, 0o755);
  return path;
}
