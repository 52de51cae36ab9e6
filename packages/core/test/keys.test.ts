import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { imageKey, LAYERING_VERSION, layerKey, sourceIdentity, symlinkLayerKey, type ImageKeyInput } from '../src/index.js';

const base: ImageKeyInput = {
  source: { identity: 'channel:nixos-unstable', revision: '0123456789abcdef0123456789abcdef01234567' },
  system: 'x86_64-linux',
  packages: ['git', 'htop'],
  layeringVersion: 1,
};

describe('imageKey', () => {
  // Pinned: these values are a contract between processes and versions. If this test fails,
  // the key format changed and every cache would silently miss; bump LAYERING_VERSION instead.
  it('has pinned values', () => {
    assert.equal(LAYERING_VERSION, 4); // 2: popularity and dominator-tree layering; 3: labels; 4: stable layering (planStableLayers)
    assert.equal(imageKey(base), '36682378ff20aad5c60942119724ef11052b11f8e5b2a605ffed93c3396d60c4');
    assert.equal(
      imageKey({ ...base, system: 'aarch64-linux' }),
      'e260749f824f83b1d06c396139c73a2578e38d9876136d0c83eb7d4b6c9bd261',
    );
  });

  it('is the sha256 of the documented canonical JSON', () => {
    const json =
      '{"layeringVersion":1,"packages":["git","htop"],"source":{"identity":"channel:nixos-unstable",' +
      '"revision":"0123456789abcdef0123456789abcdef01234567"},"system":"x86_64-linux"}';
    assert.equal(imageKey(base), createHash('sha256').update(json).digest('hex'));
  });

  it('ignores package order and duplicates', () => {
    assert.equal(imageKey({ ...base, packages: ['htop', 'git'] }), imageKey(base));
    assert.equal(imageKey({ ...base, packages: ['htop', 'git', 'htop'] }), imageKey(base));
  });

  it('changes with every field', () => {
    const key = imageKey(base);
    assert.notEqual(imageKey({ ...base, system: 'aarch64-linux' }), key);
    assert.notEqual(imageKey({ ...base, packages: ['git'] }), key);
    assert.notEqual(imageKey({ ...base, layeringVersion: 2 }), key);
    assert.notEqual(imageKey({ ...base, source: { ...base.source, revision: 'other' } }), key);
    assert.notEqual(imageKey({ ...base, source: { ...base.source, identity: 'channel:nixos-24.05' } }), key);
  });

  it('ignores fields outside the contract', () => {
    const extra = { ...base, requestId: 'abc', source: { ...base.source, url: 'x' } } as ImageKeyInput;
    assert.equal(imageKey(extra), imageKey(base));
  });

  it('does not confuse fields whose concatenations agree', () => {
    const a = imageKey({ ...base, packages: ['ab', 'c'] });
    const b = imageKey({ ...base, packages: ['a', 'bc'] });
    assert.notEqual(a, b);
  });

  it('is 64 lowercase hex', () => {
    assert.match(imageKey(base), /^[a-f0-9]{64}$/);
  });
});

describe('layerKey', () => {
  const paths = ['/nix/store/aaaa-glibc-2.39', '/nix/store/bbbb-bash-5.2'];

  it('has a pinned value', () => {
    assert.equal(layerKey(paths), '14e3311a40385755d57a440c50bb8f70ae2f44431e2a9fe420783b6afe0bd794');
    assert.equal(layerKey(paths), createHash('sha256').update(paths.join('\n')).digest('hex'));
  });

  it('ignores order and duplicates', () => {
    assert.equal(layerKey([...paths].reverse()), layerKey(paths));
    assert.equal(layerKey([...paths, ...paths]), layerKey(paths));
  });

  it('changes with the set of paths', () => {
    assert.notEqual(layerKey(paths.slice(0, 1)), layerKey(paths));
  });
});

describe('sourceIdentity', () => {
  it('names each kind of source', () => {
    assert.equal(sourceIdentity({ kind: 'path', path: '/srv/pkgs' }), 'path:/srv/pkgs');
    assert.equal(sourceIdentity({ kind: 'git', url: 'https://example.org/nixpkgs.git' }), 'git:https://example.org/nixpkgs.git');
    assert.equal(
      sourceIdentity({ kind: 'git', url: 'https://example.org/nixpkgs.git', ref: 'main' }),
      'git:https://example.org/nixpkgs.git',
    );
    assert.equal(sourceIdentity({ kind: 'channel', channel: 'nixos-unstable' }), 'channel:nixos-unstable');
  });
});

it('the symlink layer key depends on output order and never equals a layer key', () => {
  const outputs = ['/nix/store/aaaa-hello', '/nix/store/bbbb-jq'];
  assert.match(symlinkLayerKey(outputs), /^[0-9a-f]{64}$/);
  assert.notEqual(symlinkLayerKey(outputs), symlinkLayerKey([...outputs].reverse()));
  assert.notEqual(symlinkLayerKey(outputs), layerKey(outputs));
  assert.equal(symlinkLayerKey(outputs), symlinkLayerKey([...outputs]));
});
