import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PATH_REVISION, RegistryError } from '@nixyard/core';
import { SourceResolver } from '../src/source-resolver.js';
import { createGitFixture } from '../../../test/helpers/git-fixture.js';
import { tempDir } from '../../../test/helpers/bundled-set.js';

const commit = '0123456789abcdef0123456789abcdef01234567';

function isUnknownTag(err: unknown): boolean {
  return err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN';
}

describe('a path source', () => {
  const resolver = new SourceResolver({ kind: 'path', path: '/srv/pkgs' }, 300);
  test('has only latest, a moving target', async () => {
    assert.deepEqual(await resolver.resolve('latest'), { revision: PATH_REVISION, immutable: false });
    await assert.rejects(resolver.resolve('v1'), isUnknownTag);
    assert.deepEqual(await resolver.knownTags(), ['latest']);
  });
});

describe('a channel source', () => {
  const resolver = new SourceResolver({ kind: 'channel', channel: 'nixos-unstable' }, 300);
  test('latest is the configured channel, moving', async () => {
    assert.deepEqual(await resolver.resolve('latest'), { revision: 'nixos-unstable', immutable: false });
  });
  test('another channel name is that channel, moving', async () => {
    assert.deepEqual(await resolver.resolve('nixos-24.05'), { revision: 'nixos-24.05', immutable: false });
  });
  test('a 40-hex tag is that nixpkgs commit, pinned', async () => {
    assert.deepEqual(await resolver.resolve(commit), { revision: commit, immutable: true });
  });
});

describe('a git source', () => {
  const dir = tempDir('git-source');
  after(dir.cleanup);
  const fixture = createGitFixture(dir.path);

  test('latest is the default branch head; a branch is its head; a commit is itself', async () => {
    const resolver = new SourceResolver({ kind: 'git', url: fixture.url }, 300);
    assert.deepEqual(await resolver.resolve('latest'), { revision: fixture.commits.b, immutable: true });
    assert.deepEqual(await resolver.resolve('feature'), { revision: fixture.commits.c, immutable: true });
    assert.deepEqual(await resolver.resolve(fixture.commits.a), { revision: fixture.commits.a, immutable: true });
    await assert.rejects(resolver.resolve('no-such-branch'), isUnknownTag);
    assert.deepEqual(await resolver.knownTags(), ['latest', 'feature', 'main']);
  });

  test('a moving ref is re-resolved only after the TTL', async () => {
    const resolver = new SourceResolver({ kind: 'git', url: fixture.url }, 1);
    const before = await resolver.resolve('main');
    const next = fixture.advanceMain('d');
    assert.deepEqual(await resolver.resolve('main'), before, 'within the TTL: the cached resolution');
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(await resolver.resolve('main'), { revision: next, immutable: true });
  });

  test('an annotated tag resolves to its commit', async () => {
    const resolver = new SourceResolver({ kind: 'git', url: fixture.url }, 300);
    const { execFileSync } = await import('node:child_process');
    execFileSync('git', ['-c', 'user.email=t@t', '-c', 'user.name=t', 'tag', '-a', 'v1', '-m', 'v1', fixture.commits.a], { cwd: dir.path });
    assert.deepEqual(await resolver.resolve('v1'), { revision: fixture.commits.a, immutable: true });
  });
});
