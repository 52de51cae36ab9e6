// Block-parallel gzip and packLayer on top of it, in-process: the format (one gzip member per
// fixed-size block of tar, in order), bytes that depend on the input and the level alone (not on
// the thread count or how the input was chunked), what zlib's gunzip makes of it, the memory bound,
// and how failures of the source, of a thread and of storage end a pack. Real clients reading such
// layers: test/e2e (skopeo, umoci, podman, containerd) and integration/pack-layer.test.ts (GNU gzip, tar).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { createGunzip, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { MemoryStorage, type Digest, type Storage } from '@nixyard/core';
import { INLINE_LIMIT, gzipBlocks } from '../src/pack/block-gzip.js';
import { GZIP_BLOCK_SIZE, GzipPool, PROBE_MIN, PROBE_SAMPLES, PROBE_SAMPLE_SIZE, PROBE_STORE_RATIO } from '../src/pack/gzip-pool.js';
import { tarStream, treeEntries, type TarEntry } from '../src/pack/layer-tar.js';
import { packLayer } from '../src/pack/pack-layer.js';
import { prng, seededBytes } from '../../../test/helpers/random.js';
import { collect, readAll } from '../../../test/helpers/streams.js';
import { tempDir } from '../../../test/helpers/temp-dir.js';

const BLOCK = GZIP_BLOCK_SIZE;

/** `length` bytes that compress about as well as binaries do: runs of random bytes and of text. */
function layerLike(length: number, seed: number): Buffer {
  const random = prng(seed);
  const out = Buffer.allocUnsafe(length);
  const text = Buffer.from('GLIBC_2.2.5 __libc_start_main /nix/store/xwbg6iqxbqqifdba30ld68r1p90jqkrz-glibc-2.36/lib ');
  for (let i = 0; i < length; ) {
    const run = Math.min(length - i, 1 + Math.floor(random() * 4096));
    if (random() < 0.5) seededBytes(run, seed + i).copy(out, i);
    else for (let j = 0; j < run; j++) out[i + j] = text[(i + j) % text.length]!;
    i += run;
  }
  return out;
}

/** Whether a block is stored rather than deflated, spelled out (gzip-pool.ts). */
function incompressible(block: Buffer): boolean {
  if (block.length < PROBE_MIN) return false;
  const at = (i: number) => Math.floor((i * (block.length - PROBE_SAMPLE_SIZE)) / (PROBE_SAMPLES - 1));
  const samples = Buffer.concat(Array.from({ length: PROBE_SAMPLES }, (_, i) => block.subarray(at(i), at(i) + PROBE_SAMPLE_SIZE)));
  return deflateRawSync(samples, { level: 1 }).length >= PROBE_STORE_RATIO * samples.length;
}

/**
 * Level 0: deflate's stored blocks, as large as it makes them when the output has room for the
 * whole member (with less room at a time it cuts them smaller; levels 1-9 do not depend on it).
 */
const stored = (block: Buffer) => gzipSync(block, { level: 0, chunkSize: block.length + 65536 });

/** The format, spelled out: node:zlib's gzip of each block of the input (stored when it does not compress), one after another. */
function expectedMembers(input: Buffer, level: number): Buffer {
  const members: Buffer[] = [];
  for (let offset = 0; offset < input.length; offset += BLOCK) {
    const block = input.subarray(offset, offset + BLOCK);
    members.push(incompressible(block) ? stored(block) : gzipSync(block, { level }));
  }
  return members.length > 0 ? Buffer.concat(members) : gzipSync(Buffer.alloc(0), { level });
}

async function* chunked(input: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < input.length; offset += size) yield input.subarray(offset, offset + size);
}

async function compress(input: Buffer, pool: GzipPool, options: { chunk?: number; level?: number } = {}): Promise<Buffer> {
  return readAll(gzipBlocks(chunked(input, options.chunk ?? 65536), { level: options.level ?? 6, pool }));
}

const sha256 = (bytes: Uint8Array): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Until every token of the pool is back (blocks still in work come back as they finish). */
async function allReturned(pool: GzipPool): Promise<void> {
  for (let i = 0; i < 200 && pool.blocksInUse > 0; i++) await sleep(10);
  assert.equal(pool.blocksInUse, 0, 'every block token is given back');
}

const pools: GzipPool[] = [];
function pool(threads: number, maxBlocks?: number): GzipPool {
  const created = new GzipPool({ threads, maxBlocks });
  pools.push(created);
  return created;
}
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('gzipBlocks', () => {
  const sizes = [0, 1, INLINE_LIMIT - 1, INLINE_LIMIT, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345];

  test('one gzip member per block of input, in order; gunzip gives the input back', async () => {
    const threads = pool(2);
    for (const size of sizes) {
      const input = layerLike(size, size);
      const output = await compress(input, threads);
      assert.ok(output.equals(expectedMembers(input, 6)), `${size} bytes: the members of its blocks`);
      assert.ok(gunzipSync(output).equals(input), `${size} bytes: gunzipSync reads every member`);
      assert.ok((await readAll(Readable.from([output]).pipe(createGunzip()))).equals(input), `${size} bytes: a streaming gunzip too`);
    }
  });

  test('blocks that do not compress are stored; the rest, even half random, are deflated', async () => {
    const random = seededBytes(BLOCK, 1);
    const halves = Buffer.concat([seededBytes(BLOCK / 2, 2), layerLike(BLOCK / 2, 3)]);
    const input = Buffer.concat([random, halves, layerLike(BLOCK, 4), seededBytes(PROBE_MIN, 5), seededBytes(PROBE_MIN - 1, 6)]);
    const members = [stored(random), gzipSync(halves, { level: 6 }), gzipSync(input.subarray(2 * BLOCK, 3 * BLOCK), { level: 6 })];
    const output = await compress(input, pool(2));
    assert.ok(output.subarray(0, members[0]!.length).equals(members[0]!), 'the random block is stored');
    assert.ok(output.subarray(members[0]!.length, members[0]!.length + members[1]!.length).equals(members[1]!), 'the half-random block is deflated');
    assert.ok(output.equals(expectedMembers(input, 6)));
    assert.ok(gunzipSync(output).equals(input));
    // A stored member is the block and a few bytes; a block below PROBE_MIN, alone in its layer, is deflated (here: stored by deflate itself).
    assert.ok(members[0]!.length - BLOCK < 200, `${members[0]!.length - BLOCK} bytes over the block`);
    assert.ok((await compress(seededBytes(PROBE_MIN - 1, 6), pool(1))).equals(gzipSync(seededBytes(PROBE_MIN - 1, 6), { level: 6 })));
  });

  test('a layer of one block is what one gzip of it was before blocks', async () => {
    const input = layerLike(BLOCK - 100, 7);
    assert.ok((await compress(input, pool(1))).equals(gzipSync(input, { level: 6 })));
  });

  test('the same bytes with 1, 2 or 4 threads and however the input arrives', async () => {
    const input = layerLike(5 * BLOCK + 777, 42);
    const reference = await compress(input, pool(1), { chunk: BLOCK });
    for (const [threads, chunk] of [[1, 1000], [2, 65536], [4, 3 * BLOCK], [4, 4099]] as const) {
      const output = await compress(input, pool(threads), { chunk });
      assert.equal(sha256(output), sha256(reference), `${threads} threads, ${chunk}-byte chunks`);
    }
    // The level is part of the input: another level, other bytes, the same content.
    const level1 = await compress(input, pool(2), { level: 1 });
    assert.notEqual(sha256(level1), sha256(reference));
    assert.ok(gunzipSync(level1).equals(input));
  });

  test('blocks in memory stay within the pool’s bound while the consumer waits', async () => {
    const bounded = pool(2, 3);
    const input = layerLike(20 * BLOCK, 3);
    let pulled = 0;
    async function* counted() {
      for await (const chunk of chunked(input, 65536)) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const members = gzipBlocks(counted(), { level: 1, pool: bounded });
    const parts = [(await members.next()).value as Buffer];
    await sleep(300); // a slow storage: the threads are done long before it asks for more
    assert.ok(bounded.blocksInUse <= 3, `${bounded.blocksInUse} blocks in use`);
    // One block passed on, three in the pool's tokens, one chunk read ahead into none of them.
    assert.ok(pulled <= 4 * BLOCK + 65536, `read ${pulled / BLOCK} blocks ahead of a consumer that took one`);
    for await (const member of members) parts.push(member);
    assert.ok(gunzipSync(Buffer.concat(parts)).equals(input));
    await allReturned(bounded);
  });

  test('layers compressed at once share the pool’s blocks without waiting on each other', async () => {
    const shared = pool(1, 2);
    const inputs = [0, 1, 2, 3].map((i) => layerLike(3 * BLOCK + i * 1000, 100 + i));
    const outputs = await Promise.all(inputs.map((input) => compress(input, shared)));
    outputs.forEach((output, i) => assert.ok(output.equals(expectedMembers(inputs[i]!, 6)), `layer ${i}`));
    await allReturned(shared);
  });

  test('stopping early stops reading the source and gives every block back', async () => {
    const threads = pool(2);
    let closed = false;
    async function* source() {
      try {
        yield* chunked(layerLike(10 * BLOCK, 5), 65536);
      } finally {
        closed = true;
      }
    }
    for await (const member of gzipBlocks(source(), { level: 6, pool: threads })) {
      assert.ok(member.length > 0);
      break;
    }
    assert.ok(closed, 'the source was closed');
    await allReturned(threads);
  });

  test('a failing source fails the iteration with its own error', async () => {
    const threads = pool(2);
    const failure = new Error('walk failed');
    async function* source() {
      yield* chunked(layerLike(3 * BLOCK, 9), 65536);
      throw failure;
    }
    await assert.rejects(readAll(gzipBlocks(source(), { level: 6, pool: threads })), (error) => error === failure);
    await allReturned(threads);
  });

  test('a failing thread fails the iteration; the pool goes on working', async () => {
    const threads = pool(2);
    const input = layerLike(3 * BLOCK, 11);
    // zlib refuses level 42 on the thread: that block's member fails.
    await assert.rejects(compress(input, threads, { level: 42 }), /gzip failed/);
    await allReturned(threads);
    assert.ok((await compress(input, threads)).equals(expectedMembers(input, 6)));
  });
});

describe('packLayer with block-parallel gzip', () => {
  const work = tempDir('block-gzip');
  after(() => work.cleanup());

  // A tree of files bigger than a few blocks, on local disk.
  const root = `${work.path}/tree`;
  mkdirSync(`${root}/lib`, { recursive: true });
  writeFileSync(`${root}/lib/big.so`, layerLike(3 * BLOCK + 5000, 1));
  writeFileSync(`${root}/lib/small.so`, layerLike(40_000, 2));
  writeFileSync(`${root}/README`, 'hello\n');

  test('the blob is the tar in gzip members, with the diff_id of the tar', async () => {
    const storage = new MemoryStorage();
    const tar = await readAll(tarStream(treeEntries(root, 'tree')));
    assert.ok(tar.length > 3 * BLOCK);
    const layer = await packLayer(storage, treeEntries(root, 'tree'), { gzipLevel: 6, pool: pool(2) });
    const blob = await readAll(await storage.readBlob(layer.digest));
    assert.equal(layer.diffId, sha256(tar));
    assert.equal(layer.digest, sha256(blob));
    assert.equal(layer.size, blob.length);
    assert.ok(blob.equals(expectedMembers(tar, 6)), 'one member per block of the tar');
    assert.ok(gunzipSync(blob).equals(tar));
  });

  test('1 and 4 threads pack the same blob', async () => {
    const [one, four] = [new MemoryStorage(), new MemoryStorage()];
    const a = await packLayer(one, treeEntries(root, 'tree'), { gzipLevel: 6, pool: pool(1) });
    const b = await packLayer(four, treeEntries(root, 'tree'), { gzipLevel: 6, pool: pool(4) });
    assert.deepEqual(a, b);
    assert.ok((await readAll(await one.readBlob(a.digest))).equals(await readAll(await four.readBlob(b.digest))));
  });

  test('a failing walk fails the pack with its error and stores nothing', async () => {
    const storage = new MemoryStorage();
    const threads = pool(2);
    // The entry claims more bytes than the file has: the walk fails after a few blocks went out.
    const entries: TarEntry[] = [{ type: 'file', name: 'big.so', mode: 0o444, size: 8 * BLOCK, source: `${root}/lib/big.so` }];
    await assert.rejects(packLayer(storage, entries, { gzipLevel: 6, pool: threads }), /big\.so: it shrank while being read/);
    assert.deepEqual(await collect(storage.listBlobs()), []);
    await allReturned(threads);
  });

  test('a storage that fails while reading fails the pack with its error and stops the walk', async () => {
    const threads = pool(2);
    const failure = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
    let members = 0;
    const broken = brokenStorage(async (data) => {
      for await (const _member of data) if (++members === 2) throw failure;
    });
    const walk = trackedWalk(root);
    await assert.rejects(packLayer(broken, walk.entries, { gzipLevel: 6, pool: threads }), (error) => error === failure);
    for (let i = 0; i < 100 && !walk.stopped(); i++) await sleep(10);
    assert.ok(walk.stopped(), 'the walk was stopped');
    await allReturned(threads);
  });

  test('a storage that fails before reading fails the pack with its error and stops the walk', async () => {
    const threads = pool(2);
    const failure = Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    const walk = trackedWalk(root);
    await assert.rejects(packLayer(brokenStorage(async () => { throw failure; }), walk.entries, { gzipLevel: 6, pool: threads }), (error) => error === failure);
    for (let i = 0; i < 100 && !walk.stopped(); i++) await sleep(10);
    assert.ok(walk.stopped(), 'the walk was stopped');
    await allReturned(threads);
  });
});

/** A MemoryStorage whose writeBlob is `write` instead. */
function brokenStorage(write: (data: AsyncIterable<Uint8Array>) => Promise<never | void>): Storage {
  const storage = new MemoryStorage();
  storage.writeBlob = async (data) => {
    await write(data);
    throw new Error('unreachable');
  };
  return storage;
}

/** The tree's entries, and whether their walk has ended (finished, failed or been stopped). */
function trackedWalk(root: string): { entries: AsyncGenerator<TarEntry>; stopped: () => boolean } {
  let stopped = false;
  async function* entries(): AsyncGenerator<TarEntry> {
    try {
      yield* treeEntries(root, 'tree');
    } finally {
      stopped = true;
    }
  }
  return { entries: entries(), stopped: () => stopped };
}
