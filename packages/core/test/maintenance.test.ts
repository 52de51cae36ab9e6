// gc and fsck over a real filesystem storage.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  FilesystemStorage,
  OCI_IMAGE_LAYER_GZIP,
  DEFAULT_GRACE_SECONDS,
  checkStorage,
  collectGarbage,
  graceCutoff,
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

describe('the temporary area in gc and fsck', () => {
  const DAY = 86_400;
  /** A file in tmp/ as a writer that died leaves it, last written `ageSeconds` before `now`. */
  function leftover(name: string, bytes: number, ageSeconds: number, now = new Date()): void {
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const path = join(dir, 'tmp', name);
    writeFileSync(path, Buffer.alloc(bytes, 7));
    const when = new Date(now.getTime() - ageSeconds * 1000);
    utimesSync(path, when, when);
  }
  const tmpFiles = () => (existsSync(join(dir, 'tmp')) ? readdirSync(join(dir, 'tmp')).sort() : []);

  test('gc removes temporary files older than the grace period, lists them in a dry run, and keeps younger ones', async () => {
    const kept = await image(1, [await layer('in use')]);
    leftover('100-dead1', 22_000, 2 * DAY);
    leftover('101-dead2', 34_000, 3 * DAY);
    leftover('102-young', 5_000, 60);

    const dry = await collectGarbage(storage, { graceSeconds: DAY, dryRun: true, buildsInFlight: false, settleMs: 0 });
    assert.deepEqual(dry.temporary.map((item) => item.location), ['tmp/101-dead2', 'tmp/100-dead1'], 'oldest first');
    assert.equal(dry.temporaryBytes, 56_000);
    assert.equal(dry.keptYoungTemporary, 1);
    assert.deepEqual(tmpFiles(), ['100-dead1', '101-dead2', '102-young'], 'a dry run removes nothing');

    const report = await collectGarbage(storage, { graceSeconds: DAY, dryRun: false, buildsInFlight: true, settleMs: 0 });
    assert.deepEqual(report.temporary.map((item) => [item.location, item.size]), [['tmp/101-dead2', 34_000], ['tmp/100-dead1', 22_000]]);
    assert.equal(report.temporaryBytes, 56_000);
    assert.deepEqual(tmpFiles(), ['102-young']);
    assert.deepEqual(report.swept, []);
    for (const digest of [kept.config.digest, kept.manifests.oci.digest, ...kept.layers.map((l) => l.digest)]) assert.ok(await storage.statBlob(digest));
  });

  test('gc never touches the temporary file of a write in progress, which then completes', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const writing = storage.writeBlob(
      (async function* () {
        yield Buffer.alloc(3 * 1024 * 1024, 1);
        await released;
        yield Buffer.from('end');
      })(),
    );
    while (tmpFiles().length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const report = await collectGarbage(storage, { graceSeconds: 60, dryRun: false, buildsInFlight: false, settleMs: 0 });
    assert.deepEqual(report.temporary, []);
    assert.equal(report.keptYoungTemporary, 1);
    release();
    const written = await writing;
    assert.equal(written.size, 3 * 1024 * 1024 + 3);
    assert.ok(await storage.statBlob(written.digest));
    assert.deepEqual(tmpFiles(), []);
  });

  test('fsck reports temporary files older than the grace period (count, bytes, oldest age) as a problem; --repair removes them', async () => {
    await image(1, [await layer('sound')]);
    const now = new Date();
    leftover('200-dead', 22_000, 2 * DAY + 5, now);
    leftover('201-dead', 1_000, 2 * 3600, now);
    leftover('202-young', 9_000, 30, now);

    const report = await checkStorage(storage, { repair: false, graceSeconds: 3600, now });
    assert.equal(report.ok, false);
    assert.deepEqual(report.corruptBlobs, []);
    assert.deepEqual(report.staleTemporary.map((item) => item.location), ['tmp/200-dead', 'tmp/201-dead']);
    assert.equal(report.staleTemporaryBytes, 23_000);
    assert.equal(report.oldestTemporaryAgeSeconds, 2 * DAY + 5);
    assert.deepEqual(tmpFiles(), ['200-dead', '201-dead', '202-young'], 'fsck alone removes nothing');

    const byDefault = await checkStorage(storage, { repair: false, now });
    assert.equal(DEFAULT_GRACE_SECONDS, DAY);
    assert.deepEqual(byDefault.staleTemporary.map((item) => item.location), ['tmp/200-dead'], 'a day by default');

    const repaired = await checkStorage(storage, { repair: true, graceSeconds: 3600, now, settleMs: 0 });
    assert.deepEqual(repaired.repaired, { blobs: 0, manifestRecords: 0, layerRecords: 0 });
    assert.deepEqual(repaired.repairedTemporary, { items: 2, bytes: 23_000 });
    assert.deepEqual(tmpFiles(), ['202-young']);
    const after = await checkStorage(storage, { repair: false, graceSeconds: 3600, now });
    assert.equal(after.ok, true, 'a young temporary file is no problem');
    assert.equal(after.oldestTemporaryAgeSeconds, undefined);
    assert.ok(existsSync(join(dir, 'tmp', '202-young')));
  });

  test('the grace period cannot be negative', () => {
    assert.throws(() => graceCutoff(new Date(), -1), RangeError);
    assert.equal(graceCutoff(new Date(10_000), 4).getTime(), 6_000);
  });
});
