// Which client a request comes from, for per-client admission limits and the access log. The
// connection's own address, unless it is a trusted proxy (NIXYARD_TRUSTED_PROXIES): then
// X-Forwarded-For is read from the right, skipping trusted proxies, and the first address that is
// not one is the client. Anything left of it was written by the client and is not believed, so a
// client cannot pick its own address by sending the header itself.

import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

export type ClientAddressOf = (req: IncomingMessage) => string;

/** Whether an address is one of `ranges` (addresses and CIDR ranges as config.ts validated them). */
function trustedSet(ranges: readonly string[]): (address: string) => boolean {
  const trusted = new BlockList();
  for (const range of ranges) {
    const [address, prefix] = range.split('/') as [string, string | undefined];
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(address, family);
    else trusted.addSubnet(address, Number(prefix), family);
  }
  return (address) => {
    const family = isIP(address);
    return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Whether a request came straight from a trusted proxy, whose X-Forwarded-* headers are believed. */
export function fromTrustedProxyOf(ranges: readonly string[]): (req: IncomingMessage) => boolean {
  const isTrusted = trustedSet(ranges);
  return (req) => ranges.length > 0 && isTrusted(normalise(req.socket.remoteAddress ?? ''));
}

/** `ranges`: addresses and CIDR ranges as config.ts validated them. */
export function clientAddressOf(ranges: readonly string[]): ClientAddressOf {
  const isTrusted = trustedSet(ranges);
  return (req) => {
    const peer = normalise(req.socket.remoteAddress ?? '');
    if (ranges.length === 0 || !isTrusted(peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((hop) => normalise(hop.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (isIP(hop) === 0) return peer; // not an address: the chain cannot be read past here
      if (!isTrusted(hop)) return hop;
    }
    return peer;
  };
}

/** IPv4 clients of a dual-stack socket appear as `::ffff:a.b.c.d`; they are counted as a.b.c.d. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
