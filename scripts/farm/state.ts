// The farm's state directory (/tmp/nixyard-farm unless told otherwise): what `up` made, so that
// `down`, `status` and tests can find it again from another process. It holds state.json (hosts,
// addresses, processes with their pids and logs), the shared storage, the logs and every
// process's own files. A marker file says the directory is the farm's: only such a directory (or
// an empty or missing one) is ever cleared or removed, so a mistyped `--state` deletes nothing.

import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessRole } from './topology.js';

export const DEFAULT_STATE_DIR = '/tmp/nixyard-farm';
const MARKER = '.nixyard-farm';
const STATE_FILE = 'state.json';

export interface FarmHost {
  name: string;
  address: string;
  namespace: string;
  /** The root namespace's end of its link; the host's end is `eth0`. */
  veth: string;
}

export interface FarmProcess {
  name: string;
  host: string;
  role: ProcessRole;
  address: string;
  port: number;
  /** 0 until started. */
  pid: number;
  log: string;
  /** What runs inside the namespace (after `ip netns exec <ns>`). */
  argv: string[];
  /** The farm's own variables; the process gets them on top of the environment of whoever starts it. */
  env: Record<string, string>;
}

export interface FarmState {
  version: 1;
  stateDir: string;
  prefix: string;
  subnet: string;
  bridge: string;
  /** The root namespace's address on the bridge. */
  rootAddress: string;
  /** The shared storage directory every host uses (STORAGE_PATH). */
  storagePath: string;
  /** NIXERY_PKGS_PATH: the bundled offline set, or the set `up` was given. */
  packages: string;
  /** REDIS_SENTINELS and REDIS_SENTINEL_NAME, as every role gets them. */
  redisSentinels: string;
  redisSentinelName: string;
  /** NIXYARD_ADMIN_TOKEN of the APIs. */
  adminToken: string;
  /** `address:port` of the proxy: the registry's public side. */
  registry: string;
  prometheusUrl: string;
  /** How the API and worker processes run. */
  roles: 'compiled' | 'tsx';
  startedAt: string;
  hosts: FarmHost[];
  processes: FarmProcess[];
}

function isFarmDir(dir: string): boolean {
  return existsSync(join(dir, MARKER));
}

/** Makes `dir` an empty farm state directory (readable by nginx's unprivileged workers). */
export function freshStateDir(dir: string): void {
  if (existsSync(dir)) {
    if (!isFarmDir(dir) && readdirSync(dir).length > 0) {
      throw new Error(`${dir} is not empty and is not a farm state directory: choose another with --state`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, MARKER), 'A Nixyard farm state directory (scripts/farm.ts); `npm run farm -- down` removes it.\n');
}

/** Writes state.json atomically, readable by root only (it holds the admin token). */
export function writeState(state: FarmState): void {
  const path = join(state.stateDir, STATE_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function readState(dir: string): FarmState | undefined {
  try {
    const state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as FarmState;
    return state.version === 1 ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the state directory, if it is the farm's. */
export function removeStateDir(dir: string): void {
  if (isFarmDir(dir)) rmSync(dir, { recursive: true, force: true });
}
