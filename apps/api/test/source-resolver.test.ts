// Tags to revisions for each source kind, and the TTL cache of a git source's moving refs, with
// a stand-in for `git ls-remote` and a clock the test moves. The same against a real git
// repository: integration/source-resolver-git.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PATH_REVISION, RegistryError } from '@nixyard/core';
import { SourceResolver } from '../src/source-resolver.js';

const commit = '0123456789abcdef0123456789abcdef01234567';
const sha = (c: string) => c.repeat(40);

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
  test('lists latest and the channel', async () => {
    assert.deepEqual(await resolver.knownTags(), ['latest', 'nixos-unstable']);
  });
});

/** A remote whose refs the test sets, counting the look-ups; `fail` makes the next ones throw. */
function fakeRemote(refs: Record<string, string>, head = 'main') {
  const remote = {
    refs,
    lookups: 0,
    fail: undefined as Error | undefined,
    async defaultBranchHead() {
      remote.lookups++;
      if (remote.fail) throw remote.fail;
      return remote.refs[head];
    },
    async commitOf(name: string) {
      remote.lookups++;
      if (remote.fail) throw remote.fail;
      return remote.refs[name];
    },
    async names() {
      return Object.keys(remote.refs).sort();
    },
  };
  return remote;
}

describe('a git source (refs looked up by a stand-in)', () => {
  const source = { kind: 'git', url: 'https://example.org/nixpkgs.git' } as const;

  test('latest is the default branch head; a branch or tag is its head; a commit is itself', async () => {
    const remote = fakeRemote({ main: sha('b'), feature: sha('c'), v1: sha('a') });
    const resolver = new SourceResolver(source, 300, { refs: remote });
    assert.deepEqual(await resolver.resolve('latest'), { revision: sha('b'), immutable: true });
    assert.deepEqual(await resolver.resolve('feature'), { revision: sha('c'), immutable: true });
    assert.deepEqual(await resolver.resolve('v1'), { revision: sha('a'), immutable: true });
    const lookups = remote.lookups;
    assert.deepEqual(await resolver.resolve(sha('d')), { revision: sha('d'), immutable: true });
    assert.equal(remote.lookups, lookups, 'a commit needs no look-up');
    await assert.rejects(resolver.resolve('no-such-branch'), isUnknownTag);
    assert.deepEqual(await resolver.knownTags(), ['latest', 'feature', 'main', 'v1']);
  });

  test('a moving ref is re-resolved only once the TTL has passed', async () => {
    let now = 1_000_000;
    const remote = fakeRemote({ main: sha('a') });
    const resolver = new SourceResolver(source, 60, { refs: remote, now: () => now });
    assert.deepEqual(await resolver.resolve('main'), { revision: sha('a'), immutable: true });
    remote.refs.main = sha('b');
    now += 59_999;
    assert.deepEqual(await resolver.resolve('main'), { revision: sha('a'), immutable: true }, 'within the TTL: the cached resolution');
    assert.equal(remote.lookups, 1);
    now += 1;
    assert.deepEqual(await resolver.resolve('main'), { revision: sha('b'), immutable: true }, 'at the TTL: looked up again');
    assert.equal(remote.lookups, 2);
  });

  test('concurrent resolutions of one ref share one look-up', async () => {
    const remote = fakeRemote({ main: sha('a') });
    const resolver = new SourceResolver(source, 60, { refs: remote, now: () => 0 });
    const all = await Promise.all([resolver.resolve('main'), resolver.resolve('main'), resolver.resolve('latest')]);
    assert.deepEqual(all.map((r) => r.revision), [sha('a'), sha('a'), sha('a')]);
    assert.equal(remote.lookups, 2, 'one for main, one for latest');
  });

  test('a failed or unknown resolution is not cached', async () => {
    const remote = fakeRemote({});
    const resolver = new SourceResolver(source, 60, { refs: remote, now: () => 0 });
    await assert.rejects(resolver.resolve('main'), isUnknownTag);
    remote.refs.main = sha('a');
    assert.deepEqual(await resolver.resolve('main'), { revision: sha('a'), immutable: true }, 'the unknown tag was looked up again');
    remote.fail = new Error('git ls-remote failed');
    await assert.rejects(resolver.resolve('feature'), /git ls-remote failed/);
    remote.fail = undefined;
    remote.refs.feature = sha('c');
    assert.deepEqual(await resolver.resolve('feature'), { revision: sha('c'), immutable: true }, 'the failure was not kept');
  });
});
