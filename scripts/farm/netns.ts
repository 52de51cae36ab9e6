// The farm's network: one network namespace per host, each joined to one bridge in the root
// namespace by a veth pair, all made with iproute2's `ip` (argument arrays, never a shell). Only
// names with the farm's prefix are ever created or deleted, and nothing else of the machine's
// (its interfaces, routes, firewall) is touched: the bridge's own subnet route, which the kernel
// adds with its address, is the one route the farm brings, and traffic stays on the bridge.

import { execFileSync } from 'node:child_process';
import { BlockList } from 'node:net';
import { HOSTS, type Addressing } from './topology.js';

/** Runs `ip <args>`; throws with ip's own message. */
export function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function ipJson<T>(args: string[]): T[] {
  const text = ip(['-j', ...args]).trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/** The farm's namespaces that exist, by prefix. */
export function farmNamespaces(prefix: string): string[] {
  return ipJson<{ name: string }>(['netns', 'list'])
    .map((ns) => ns.name)
    .filter((name) => name.startsWith(prefix));
}

/** The farm's links in the root namespace (the bridge and the veths' root ends), by prefix. */
export function farmLinks(prefix: string): string[] {
  return ipJson<{ ifname: string }>(['link', 'show'])
    .map((link) => link.ifname)
    .filter((name) => name.startsWith(prefix));
}

/**
 * Throws when the subnet is in use on this machine outside the farm (an address or a route on
 * another interface), so the farm never shadows a real network.
 */
export function assertSubnetFree(net: Addressing): void {
  const [network, bits] = net.subnet.split('/') as [string, string];
  const ours = new BlockList();
  ours.addSubnet(network, Number(bits), 'ipv4');
  const mine = (dev: string | undefined) => dev !== undefined && dev.startsWith(net.prefix);
  for (const link of ipJson<{ ifname: string; addr_info?: Array<{ family: string; local: string }> }>(['-4', 'addr', 'show'])) {
    for (const a of link.addr_info ?? []) {
      if (a.family === 'inet' && ours.check(a.local, 'ipv4') && !mine(link.ifname)) {
        throw new Error(`${net.subnet} is in use on this machine: ${link.ifname} has ${a.local} (choose another with --subnet)`);
      }
    }
  }
  for (const route of ipJson<{ dst: string; dev?: string }>(['-4', 'route', 'show', 'table', 'all'])) {
    if (route.dst === 'default' || mine(route.dev)) continue;
    const [dst, len] = route.dst.includes('/') ? (route.dst.split('/') as [string, string]) : [route.dst, '32'];
    if (!/^[0-9.]+$/.test(dst)) continue;
    const theirs = new BlockList();
    theirs.addSubnet(dst, Number(len), 'ipv4');
    if (theirs.check(network, 'ipv4') || ours.check(dst, 'ipv4')) {
      throw new Error(`${net.subnet} overlaps the route ${route.dst} via ${route.dev ?? '?'} on this machine (choose another with --subnet)`);
    }
  }
}

/** The bridge, with the root namespace's address on it. */
export function createBridge(net: Addressing): void {
  ip(['link', 'add', 'name', net.bridge, 'type', 'bridge']);
  ip(['addr', 'add', `${net.rootAddress}/24`, 'dev', net.bridge]);
  ip(['link', 'set', net.bridge, 'up']);
}

/** A host: its namespace, loopback up, and `eth0` with its address, plugged into the bridge. */
export function createHost(net: Addressing, host: string): void {
  const ns = net.namespace(host);
  const veth = net.veth(host);
  ip(['netns', 'add', ns]);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  // The host's end is made inside its namespace, so no temporary name is ever seen in the root one.
  ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  ip(['link', 'set', veth, 'master', net.bridge]);
  ip(['link', 'set', veth, 'up']);
  ip(['-n', ns, 'addr', 'add', `${net.address(host)}/24`, 'dev', 'eth0']);
  ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
}

/** Sets kernel settings (net.* ones, which each namespace has its own of) in a host's namespace. */
export function setSysctls(net: Addressing, host: string, settings: Record<string, string>): void {
  const assignments = Object.entries(settings).map(([name, value]) => `${name}=${value}`);
  if (assignments.length === 0) return;
  // `sysctl` is procps' (scripts/install-system-packages.sh --farm).
  ip(['netns', 'exec', net.namespace(host), 'sysctl', '-q', '-w', ...assignments]);
}

export function createNetwork(net: Addressing): void {
  createBridge(net);
  for (const host of HOSTS) createHost(net, host.name);
}

/** Cuts (`down`) or restores (`up`) a host's only link: its veth's root end. */
export function setLink(net: Addressing, host: string, state: 'up' | 'down'): void {
  ip(['link', 'set', net.veth(host), state]);
}

/** Whether a link is administratively up, or undefined when it does not exist. */
export function linkIsUp(name: string): boolean | undefined {
  try {
    const [link] = ipJson<{ flags: string[] }>(['link', 'show', 'dev', name]);
    return link?.flags.includes('UP');
  } catch {
    return undefined;
  }
}

/** The pids of every process in a namespace (`ip netns pids`), whatever started them. */
export function namespacePids(ns: string): number[] {
  try {
    return ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function deleteNamespace(ns: string): void {
  ip(['netns', 'del', ns]);
}

/** Deletes a link; one that is gone already (a veth goes with its namespace) is fine. */
export function deleteLink(name: string): void {
  try {
    ip(['link', 'del', 'dev', name]);
  } catch (err) {
    if (linkIsUp(name) !== undefined) throw err;
  }
}
