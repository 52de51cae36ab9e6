import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from '../src/registry-errors.js';
import { countStates, isSettled, parseImageReference } from '../src/prebuild.js';

test('an image reference defaults to latest and keeps its system', () => {
  assert.deepEqual(parseImageReference('shell/git'), { packages: ['bashInteractive', 'coreutils', 'git', 'moreutils', 'nano'], system: 'x86_64-linux', tag: 'latest' });
  assert.deepEqual(parseImageReference('arm64/hello:v1.2'), { packages: ['hello'], system: 'aarch64-linux', tag: 'v1.2' });
});

test('bad references are registry errors naming the problem', () => {
  for (const [text, code] of [
    ['hel"lo', 'NAME_INVALID'],
    ['hello:-x', 'TAG_INVALID'],
    ['hello@sha256:' + 'a'.repeat(64), 'TAG_INVALID'],
    ['hello:a:b', 'TAG_INVALID'],
    ['', 'NAME_INVALID'],
  ] as const) {
    assert.throws(() => parseImageReference(text), (err) => err instanceof RegistryError && err.code === code, text);
  }
});

test('counts by state, settled when nothing waits or runs', () => {
  const counts = countStates([{ state: 'built' }, { state: 'cached' }, { state: 'failed' }, { state: 'queued' }]);
  assert.deepEqual(counts, { queued: 1, building: 0, built: 1, cached: 1, failed: 1, cancelled: 0 });
  assert.equal(isSettled(counts), false);
  assert.equal(isSettled({ ...counts, queued: 0 }), true);
});
