// gc and fsck over a real filesystem storage.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  FilesystemStorage,
  OCI_IMAGE_LAYER_GZIP,
  checkStorage,
  collectGarbage,
  layerKey,
  layerRecordKey,
  manifestRecordKey,
  type Digest,
  type ManifestRecord,
} from '../src/index.js';

let dir: string;
let storage: FilesystemStorage;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixyard-maintenance-'));
  storage = new FilesystemStorage(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const later = (hours: number) => new Date(Date.now() + hours * 3600_000);
const blob = async (text: string) => (await storage.writeBlob(Readable.from([Buffer.from(text)]))).digest;
const key = (n: number) => n.toString(16).padStart(64, '0');

/** A manifest record naming the given layers, with its own config and manifest blobs. */
async function image(n: number, layers: Digest[]): Promise<ManifestRecord> {
  const ref = async (what: string) => ({ digest: await blob(`${what} of image ${n}`), size: `${what} of image ${n}`.length });
  const record: ManifestRecord = {
    imageKey: key(n),
    system: 'x86_64-linux',
    packages: [`p${n}`],
    source: { identity: 'path:/x', revision: 'r' },
    config: await ref('config'),
    manifests: { oci: await ref('oci'), docker: await ref('docker') },
    layers: layers.map((digest) => ({ digest, diffId: digest, size: 1 })),
    createdAt: new Date().toISOString(),
  };
  await storage.putRecord(manifestRecordKey(record.imageKey), record);
  return record;
}

async function layer(text: string): Promise<Digest> {
  const digest = await blob(text);
  await storage.putRecord(layerRecordKey(layerKey([`/nix/store/${text}`])), {
    layerKey: layerKey([`/nix/store/${text}`]),
    digest,
    diffId: digest,
    size: text.length,
    mediaType: OCI_IMAGE_LAYER_GZIP,
    storePaths: [`/nix/store/${text}`],
    rating: 1,
  });
  return digest;
}

describe('gc', () => {
  test('keeps what manifests name, sweeps the rest once older than the grace period', async () => {
    const shared = await layer('shared');
    const onlyGone = await layer('only-in-the-deleted-image');
    const a = await image(1, [shared]);
    const gone = await image(2, [shared, onlyGone]);
    await storage.deleteRecord(manifestRecordKey(gone.imageKey));

    const young = await collectGarbage(storage, { graceSeconds: 3600, dryRun: false, buildsInFlight: false });
    assert.deepEqual(young.swept, [], 'everything is younger than an hour');
    assert.equal(young.keptYoung, 4, "the deleted image's layer, config and two manifests");

    const dry = await collectGarbage(storage, { graceSeconds: 3600, dryRun: true, buildsInFlight: false, now: later(2), settleMs: 0 });
    assert.equal(dry.swept.length, 4);
    assert.ok(await storage.statBlob(onlyGone), 'a dry run deletes nothing');

    const report = await collectGarbage(storage, { graceSeconds: 3600, dryRun: false, buildsInFlight: false, now: later(2), settleMs: 0 });
    const sweptDigests = report.swept.map((b) => b.digest).sort();
    assert.deepEqual(sweptDigests, [onlyGone, gone.config.digest, gone.manifests.oci.digest, gone.manifests.docker.digest].sort());
    assert.equal(await storage.statBlob(onlyGone), undefined);
    for (const kept of [shared, a.config.digest, a.manifests.oci.digest, a.manifests.docker.digest]) assert.ok(await storage.statBlob(kept));
    assert.deepEqual(report.layerRecords, [layerRecordKey(layerKey(['/nix/store/only-in-the-deleted-image']))]);
    assert.equal(await storage.getRecord(report.layerRecords[0]!), undefined, 'its layer record went with it');
  });

  test('while builds are in flight, every layer record keeps its blob', async () => {
    const cached = await layer('packed-but-not-yet-in-a-manifest');
    const report = await collectGarbage(storage, { graceSeconds: 0, dryRun: false, buildsInFlight: true, now: later(1), settleMs: 0 });
    assert.deepEqual(report.swept, []);
    assert.ok(await storage.statBlob(cached));
  });
});

describe('fsck', () => {
  test('finds a blob whose bytes changed and a manifest whose layer is gone; repair removes them', async () => {
    const sound = await layer('sound');
    const altered = await layer('altered');
    const deleted = await layer('deleted');
    await image(1, [sound]);
    const withAltered = await image(2, [altered]);
    const withDeleted = await image(3, [deleted]);

    assert.equal((await checkStorage(storage, { repair: false })).ok, true);
    writeFileSync(join(dir, 'blobs', 'sha256', altered.slice(7)), 'not what it was');
    await storage.deleteBlob(deleted);

    const report = await checkStorage(storage, { repair: false });
    assert.equal(report.ok, false);
    assert.deepEqual(report.corruptBlobs, [altered]);
    assert.deepEqual(
      report.brokenManifests.map((m) => [m.key, m.missing, m.corrupt]).sort(),
      [
        [manifestRecordKey(withAltered.imageKey), [], [altered]],
        [manifestRecordKey(withDeleted.imageKey), [deleted], []],
      ].sort(),
    );
    assert.equal(report.brokenLayerRecords.length, 2);

    const repaired = await checkStorage(storage, { repair: true, settleMs: 0 });
    assert.deepEqual(repaired.repaired, { blobs: 1, manifestRecords: 2, layerRecords: 2 });
    assert.equal((await checkStorage(storage, { repair: false })).ok, true, 'clean after the repair');
    assert.ok(await storage.getRecord(manifestRecordKey(key(1))), 'the sound image is untouched');
  });

  test('a sample hashes only that many blobs', async () => {
    for (let i = 0; i < 10; i++) await blob(`blob ${i}`);
    const report = await checkStorage(storage, { sample: 3, repair: false });
    assert.equal(report.blobs, 10);
    assert.equal(report.hashed, 3);
  });
});
