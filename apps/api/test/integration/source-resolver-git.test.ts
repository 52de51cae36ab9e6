// A git source against a real repository (file://, through `git ls-remote`): branches, the
// default branch, annotated tags, and the TTL of a moving ref on a clock the test moves. The
// other source kinds and the cache's rules: ../source-resolver.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { RegistryError } from '@nixyard/core';
import { SourceResolver } from '../../src/source-resolver.js';
import { createGitFixture } from '../../../../test/helpers/git-fixture.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

function isUnknownTag(err: unknown): boolean {
  return err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN';
}

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
    let now = 1_000_000;
    const resolver = new SourceResolver({ kind: 'git', url: fixture.url }, 1, { now: () => now });
    const before = await resolver.resolve('main');
    const next = fixture.advanceMain('d');
    assert.notEqual(next, before.revision);
    now += 999;
    assert.deepEqual(await resolver.resolve('main'), before, 'within the TTL: the cached resolution');
    now += 1;
    assert.deepEqual(await resolver.resolve('main'), { revision: next, immutable: true });
  });

  test('an annotated tag resolves to its commit', async () => {
    const resolver = new SourceResolver({ kind: 'git', url: fixture.url }, 300);
    execFileSync('git', ['-c', 'user.email=t@t', '-c', 'user.name=t', 'tag', '-a', 'v1', '-m', 'v1', fixture.commits.a], { cwd: dir.path });
    assert.deepEqual(await resolver.resolve('v1'), { revision: fixture.commits.a, immutable: true });
  });
});
