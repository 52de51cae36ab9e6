// The farm's hosts and what runs on each: the compose topology (docs/operations.md) grown to the
// shape a real farm has, Redis with a replica and three Sentinels, two API replicas behind the
// proxy, workers for two systems and Prometheus, each host with a fixed address of its own in one
// private /24 (10.213.80.0/24 by default, beside compose's 10.213.64.0/24). Pure data: the
// namespaces, links and processes are made from this table by the other modules.

/** The prefix of every namespace and link the farm makes; `down` removes everything that has it. */
export const DEFAULT_PREFIX = 'nxy-';
export const DEFAULT_SUBNET = '10.213.80.0/24';
/** The primary's name in the Sentinels' configuration (REDIS_SENTINEL_NAME). */
export const SENTINEL_NAME = 'nixyard';

export type ProcessRole = 'redis-primary' | 'redis-replica' | 'sentinel' | 'api' | 'proxy' | 'worker' | 'prometheus';

export const PORTS = {
  redis: 6379,
  sentinel: 26379,
  api: 8080,
  proxy: 8080,
  workerMetrics: 9091,
  prometheus: 9090,
} as const;

export interface HostSpec {
  /** Short, since the root side of its link is `<prefix><name>` (at most 15 characters). */
  name: string;
  /** The last octet of its address in the subnet. */
  octet: number;
}

export interface ProcessSpec {
  /** Unique in the farm: what kill/restart name. */
  name: string;
  host: string;
  role: ProcessRole;
  port: number;
  /** For workers: NIXYARD_SYSTEMS. */
  systems?: string[];
}

/** The root namespace's address on the bridge: tests and the operator reach the farm from it. */
export const ROOT_OCTET = 1;

export const HOSTS: readonly HostSpec[] = [
  // .2 as in compose, where the proxy has the one fixed address.
  { name: 'proxy', octet: 2 },
  { name: 'redis-a', octet: 11 },
  { name: 'redis-b', octet: 12 },
  { name: 'sentinel-c', octet: 13 },
  { name: 'api-1', octet: 21 },
  { name: 'api-2', octet: 22 },
  { name: 'worker-1', octet: 31 },
  { name: 'worker-2', octet: 32 },
  { name: 'worker-3', octet: 33 },
  { name: 'prometheus', octet: 41 },
];

/** In start order: Redis first, then the roles that need it, then what fronts and watches them. */
export const PROCESSES: readonly ProcessSpec[] = [
  { name: 'redis-a', host: 'redis-a', role: 'redis-primary', port: PORTS.redis },
  { name: 'redis-b', host: 'redis-b', role: 'redis-replica', port: PORTS.redis },
  { name: 'sentinel-a', host: 'redis-a', role: 'sentinel', port: PORTS.sentinel },
  { name: 'sentinel-b', host: 'redis-b', role: 'sentinel', port: PORTS.sentinel },
  { name: 'sentinel-c', host: 'sentinel-c', role: 'sentinel', port: PORTS.sentinel },
  { name: 'api-1', host: 'api-1', role: 'api', port: PORTS.api },
  { name: 'api-2', host: 'api-2', role: 'api', port: PORTS.api },
  { name: 'worker-1', host: 'worker-1', role: 'worker', port: PORTS.workerMetrics, systems: ['x86_64-linux'] },
  { name: 'worker-2', host: 'worker-2', role: 'worker', port: PORTS.workerMetrics, systems: ['x86_64-linux'] },
  // Built on this x86_64 machine through the test-only `extra-platforms` route (test/e2e/systems.test.ts).
  { name: 'worker-3', host: 'worker-3', role: 'worker', port: PORTS.workerMetrics, systems: ['aarch64-linux'] },
  { name: 'proxy', host: 'proxy', role: 'proxy', port: PORTS.proxy },
  { name: 'prometheus', host: 'prometheus', role: 'prometheus', port: PORTS.prometheus },
];

/** The systems every API serves, and turns each tag into an index of (NIXYARD_INDEX_SYSTEMS). */
export const API_SYSTEMS = ['x86_64-linux', 'aarch64-linux'];

export interface Addressing {
  prefix: string;
  /** `a.b.c.0/24` */
  subnet: string;
  bridge: string;
  rootAddress: string;
  address(host: string): string;
  namespace(host: string): string;
  /** The root namespace's end of the host's veth pair (the host's end is `eth0`). */
  veth(host: string): string;
}

const IFNAMSIZ = 15;

/** Names and addresses for `prefix` and `subnet`, checked: interface names fit, the subnet is a /24. */
export function addressing(prefix = DEFAULT_PREFIX, subnet = DEFAULT_SUBNET): Addressing {
  if (!/^[a-z][a-z0-9]{0,5}-$/.test(prefix)) throw new Error(`farm prefix must be 1-6 lowercase letters and digits and a "-", not ${JSON.stringify(prefix)}`);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || m.slice(1).some((octet) => Number(octet) > 255)) throw new Error(`farm subnet must be a /24 such as ${DEFAULT_SUBNET}, not ${JSON.stringify(subnet)}`);
  const base = m.slice(1, 4).join('.');
  const byName = new Map(HOSTS.map((h) => [h.name, h]));
  const host = (name: string) => {
    const spec = byName.get(name);
    if (!spec) throw new Error(`no farm host ${JSON.stringify(name)} (hosts: ${HOSTS.map((h) => h.name).join(', ')})`);
    return spec;
  };
  const bridge = `${prefix}br0`;
  for (const name of [bridge, ...HOSTS.map((h) => prefix + h.name)]) {
    if (name.length > IFNAMSIZ) throw new Error(`interface name ${name} is longer than ${IFNAMSIZ} characters: use a shorter prefix`);
  }
  return {
    prefix,
    subnet,
    bridge,
    rootAddress: `${base}.${ROOT_OCTET}`,
    address: (name) => `${base}.${host(name).octet}`,
    namespace: (name) => prefix + host(name).name,
    veth: (name) => prefix + host(name).name,
  };
}

/** REDIS_SENTINELS: every Sentinel, `address:port`. */
export function sentinelList(net: Addressing): string {
  return PROCESSES.filter((p) => p.role === 'sentinel')
    .map((p) => `${net.address(p.host)}:${p.port}`)
    .join(',');
}

export function processSpec(name: string): ProcessSpec {
  const spec = PROCESSES.find((p) => p.name === name);
  if (!spec) throw new Error(`no farm process ${JSON.stringify(name)} (processes: ${PROCESSES.map((p) => p.name).join(', ')})`);
  return spec;
}
