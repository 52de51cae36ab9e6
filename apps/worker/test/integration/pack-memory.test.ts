// A layer is streamed, never held: packing a 128 MiB store path must not grow the process by
// anything near 128 MiB (the tar, and the gzip of random bytes, are each that large).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FilesystemStorage, digestHex } from '@nixyard/core';
import { storePathEntries } from '../src/pack/layer-tar.js';
import { packLayer } from '../src/pack/pack-layer.js';

const NIX_CONFIG = 'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command';
const MiB = 1024 * 1024;
const BIG = 128 * MiB;

function nixBuild(name: string, script: string): string {
  const expr = `derivation { name = ${JSON.stringify(name)}; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" ${JSON.stringify(`export PATH=/usr/bin:/bin; set -e; ${script}`)} ]; }`;
  const env = { ...process.env, NIX_CONFIG };
  return execFileSync('nix-build', ['--no-out-link', '-E', expr], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

let work: string;
let big: string;
let small: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'nixyard-pack-memory-'));
  // Built once per store: the derivation never changes, so later runs reuse the output.
  big = nixBuild('pack-test-big', `mkdir $out; head -c ${BIG} /dev/urandom > $out/random; echo small > $out/small`);
  small = nixBuild('pack-test-small', 'mkdir $out; echo small > $out/file');
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('packing a 128 MiB store path keeps memory flat', async (t) => {
  const storage = new FilesystemStorage(join(work, 'storage'));
  // Warm up first, so loading code and first-use allocations do not count as growth.
  await packLayer(storage, storePathEntries([small]), { gzipLevel: 6 });

  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const started = performance.now();
  const layer = await packLayer(storage, storePathEntries([big]), { gzipLevel: 6 });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);

  const blobSize = (await stat(join(storage.rootDir, 'blobs', 'sha256', digestHex(layer.digest)))).size;
  assert.equal(layer.size, blobSize);
  assert.ok(blobSize > BIG, 'random bytes do not compress');
  const growth = peak - baseline;
  t.diagnostic(`rss growth ${(growth / MiB).toFixed(1)} MiB; ${(BIG / MiB / seconds).toFixed(0)} MiB/s at gzip level 6`);
  // Merely reading a big file through a Node stream grows rss by ~30-60 MiB here (chunks wait for
  // the GC, more so on a busy machine); holding the tar or the gzip whole would add at least 128 MiB.
  assert.ok(growth < (BIG * 3) / 4, `rss grew by ${(growth / MiB).toFixed(1)} MiB while packing ${BIG / MiB} MiB`);
});
