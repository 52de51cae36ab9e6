// Draining streams and async iterables in tests.

import assert from 'node:assert/strict';

/** Every item of an async iterable, in order. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * A stream (or any async iterable of byte chunks or strings) read to its end, as one Buffer.
 * `undefined` (a storage's "no such blob") fails the test.
 */
export async function readAll(stream: AsyncIterable<unknown> | undefined): Promise<Buffer> {
  assert.ok(stream, 'expected a stream, got undefined');
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

/** The parts as an async source of byte chunks, one chunk each (what a storage's writeBlob takes). */
export async function* chunksOf(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}
