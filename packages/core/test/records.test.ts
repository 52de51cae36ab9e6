// Storage records: what the schemas accept and refuse, and the keys records are stored under.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  layerKey,
  LayerRecordSchema,
  layerRecordKey,
  manifestRecordKey,
  ManifestRecordSchema,
  OCI_IMAGE_LAYER_GZIP,
  type LayerRecord,
  type ManifestRecord,
} from '../src/index.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as const;

const storePaths = ['/nix/store/aaaa-glibc-2.39', '/nix/store/bbbb-bash-5.2'];
const layer: LayerRecord = {
  layerKey: layerKey(storePaths),
  digest: d('1'),
  diffId: d('2'),
  size: 4096,
  mediaType: OCI_IMAGE_LAYER_GZIP,
  storePaths,
  rating: 123456,
};

const manifest: ManifestRecord = {
  imageKey: 'f'.repeat(64),
  system: 'x86_64-linux',
  packages: ['bashInteractive', 'git'],
  source: { identity: 'channel:nixos-unstable', revision: '0123456789abcdef0123456789abcdef01234567' },
  config: { digest: d('c'), size: 900 },
  manifests: { oci: { digest: d('d'), size: 600 }, docker: { digest: d('e'), size: 610 } },
  layers: [
    { digest: d('1'), diffId: d('2'), size: 4096 },
    { digest: d('3'), diffId: d('4'), size: 512 },
  ],
  createdAt: '2025-01-02T03:04:05.678Z',
};

const roundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('LayerRecordSchema', () => {
  it('accepts a layer record and survives a JSON round trip', () => {
    assert.deepEqual(LayerRecordSchema.parse(roundTrip(layer)), layer);
  });

  it('drops unknown fields (a newer writer must not break an older reader)', () => {
    assert.deepEqual(LayerRecordSchema.parse({ ...layer, addedLater: 1 }), layer);
  });

  it('refuses malformed records', () => {
    const bad: Array<[string, unknown]> = [
      ['short key', { ...layer, layerKey: 'abc' }],
      ['bad digest', { ...layer, digest: 'sha256:xyz' }],
      ['bad diffId', { ...layer, diffId: d('A') }],
      ['fractional size', { ...layer, size: 1.5 }],
      ['negative size', { ...layer, size: -1 }],
      ['docker media type', { ...layer, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
      ['unsorted paths', { ...layer, storePaths: [...storePaths].reverse() }],
      ['duplicate paths', { ...layer, storePaths: [storePaths[0], storePaths[0]] }],
      ['relative path', { ...layer, storePaths: ['nix/store/x'] }],
      ['negative rating', { ...layer, rating: -1 }],
      ['missing rating', { ...layer, rating: undefined }],
    ];
    for (const [why, value] of bad) assert.equal(LayerRecordSchema.safeParse(value).success, false, why);
  });
});

describe('ManifestRecordSchema', () => {
  it('accepts a manifest record and survives a JSON round trip', () => {
    assert.deepEqual(ManifestRecordSchema.parse(roundTrip(manifest)), manifest);
    assert.deepEqual(ManifestRecordSchema.parse({ ...manifest, createdAt: '2025-01-02T03:04:05+02:00' }).createdAt, '2025-01-02T03:04:05+02:00');
  });

  it('refuses malformed records', () => {
    const bad: Array<[string, unknown]> = [
      ['bad image key', { ...manifest, imageKey: 'F'.repeat(64) }],
      ['unknown system', { ...manifest, system: 'x86_64-darwin' }],
      ['no packages', { ...manifest, packages: [] }],
      ['unsorted packages', { ...manifest, packages: ['git', 'bashInteractive'] }],
      ['invalid package', { ...manifest, packages: ['${evil}'] }],
      ['empty revision', { ...manifest, source: { ...manifest.source, revision: '' } }],
      ['no docker manifest', { ...manifest, manifests: { oci: manifest.manifests.oci } }],
      ['layer without diffId', { ...manifest, layers: [{ digest: d('1'), size: 1 }] }],
      ['not ISO time', { ...manifest, createdAt: 'yesterday' }],
      ['date only', { ...manifest, createdAt: '2025-01-02' }],
    ];
    for (const [why, value] of bad) assert.equal(ManifestRecordSchema.safeParse(value).success, false, why);
  });
});

describe('record keys', () => {
  it('are manifests/<imageKey> and layers/<layerKey>', () => {
    assert.equal(manifestRecordKey('a'.repeat(64)), `manifests/${'a'.repeat(64)}`);
    assert.equal(layerRecordKey('0'.repeat(64)), `layers/${'0'.repeat(64)}`);
  });

  it('refuse anything but a 64-hex key', () => {
    for (const bad of ['', '../x', 'A'.repeat(64), 'a'.repeat(63), `${'a'.repeat(64)}/x`]) {
      assert.throws(() => manifestRecordKey(bad), TypeError);
      assert.throws(() => layerRecordKey(bad), TypeError);
    }
  });
});
