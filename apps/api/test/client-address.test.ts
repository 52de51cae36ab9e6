// Who a request comes from (client-address.ts): the connection's address unless it is a trusted
// proxy, then X-Forwarded-For read from the right past trusted proxies only.

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { clientAddressOf } from '../src/client-address.js';

function request(peer: string, forwardedFor?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } } as unknown as IncomingMessage;
}

test('without trusted proxies the connection decides, whatever the header says', () => {
  const of = clientAddressOf([]);
  assert.equal(of(request('203.0.113.7', '198.51.100.1')), '203.0.113.7');
  assert.equal(of(request('::ffff:203.0.113.7')), '203.0.113.7');
  assert.equal(of(request('2001:db8::1')), '2001:db8::1');
});

test('a header from a connection that is not a trusted proxy is ignored', () => {
  const of = clientAddressOf(['10.0.0.0/8']);
  assert.equal(of(request('203.0.113.7', '198.51.100.1')), '203.0.113.7');
});

test('behind a trusted proxy, the rightmost address that is not a trusted proxy is the client', () => {
  const of = clientAddressOf(['10.0.0.0/8', '172.28.0.5']);
  assert.equal(of(request('10.1.2.3', '198.51.100.1')), '198.51.100.1');
  // The client wrote the leftmost entry itself: not believed.
  assert.equal(of(request('10.1.2.3', '192.0.2.99, 198.51.100.1')), '198.51.100.1');
  // Two trusted proxies in a row, header split over two lines.
  assert.equal(of(request('::ffff:172.28.0.5', ['192.0.2.99, 198.51.100.1', '10.9.9.9'])), '198.51.100.1');
});

test('an unreadable or missing chain leaves the proxy as the client', () => {
  const of = clientAddressOf(['10.0.0.0/8']);
  assert.equal(of(request('10.1.2.3')), '10.1.2.3');
  assert.equal(of(request('10.1.2.3', 'evil, not-an-ip')), '10.1.2.3');
  assert.equal(of(request('10.1.2.3', '10.4.4.4')), '10.1.2.3');
});

test('IPv6 ranges work like IPv4 ones', () => {
  const of = clientAddressOf(['fd00::/8']);
  assert.equal(of(request('fd00::1', '2001:db8::7')), '2001:db8::7');
  assert.equal(of(request('2001:db8::9', '2001:db8::7')), '2001:db8::9');
});
