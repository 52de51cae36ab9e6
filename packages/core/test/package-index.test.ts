import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PackageIndexSchema, checkAgainstIndex, packageIndexKey } from '../src/package-index.js';

const names = new Set(['hello', 'jq', 'xorg', 'python3Packages']);

test('names whose top level exists are plausible, nested ones included', () => {
  assert.deepEqual(checkAgainstIndex(names, ['hello', 'jq', 'xorg.xev', 'xorg.nosuch']), { kind: 'plausible' });
});

test('unknown top-level names are reported when nothing else needs Nix', () => {
  assert.deepEqual(checkAgainstIndex(names, ['hello', 'nosuchpkg', 'zzz.sub']), { kind: 'unknown', packages: ['nosuchpkg', 'zzz.sub'] });
});

test('a nested name under a known set makes the verdict incomplete', () => {
  // xorg.nosuch may or may not exist; only Nix can list every unknown name.
  assert.deepEqual(checkAgainstIndex(names, ['nosuchpkg', 'xorg.nosuch']), { kind: 'incomplete' });
});

test('the key depends on source, revision and system', () => {
  const base = { source: { identity: 'path:/p', revision: 'r1' }, system: 'x86_64-linux' as const };
  const key = packageIndexKey(base);
  assert.match(key, /^package-index\/[0-9a-f]{64}$/);
  assert.notEqual(packageIndexKey({ ...base, system: 'aarch64-linux' }), key);
  assert.notEqual(packageIndexKey({ ...base, source: { identity: 'path:/p', revision: 'r2' } }), key);
  assert.notEqual(packageIndexKey({ ...base, source: { identity: 'path:/q', revision: 'r1' } }), key);
});

test('the record schema rejects a malformed index', () => {
  assert.equal(PackageIndexSchema.safeParse({ source: { identity: 'x', revision: 'y' }, system: 'x86_64-linux', names: ['a'] }).success, true);
  assert.equal(PackageIndexSchema.safeParse({ source: { identity: 'x', revision: 'y' }, system: 'sparc-linux', names: [] }).success, false);
});
