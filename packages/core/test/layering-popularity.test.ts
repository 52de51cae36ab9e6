// Popularity helpers for layering: store-path names, pnames, and reference counts over closures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  lookUpPopularity,
  pnameOf,
  popularityFromGraphs,
  referenceCounts,
  referencedNames,
  storePathName,
  storePathPname,
  type ClosureGraph,
} from '../src/index.js';

const HASH_A = '0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r'; // 32 characters of Nix's base-32 alphabet
const HASH_B = 'zyxwvsrqpnmlkjihgfdcba9876543210';
const at = (hash: string, name: string): string => `/nix/store/${hash}-${name}`;

function closure(paths: [path: string, references: string[]][], roots: string[] = []): ClosureGraph {
  return {
    roots: [...roots].sort(),
    paths: paths.map(([path, references]) => ({ path, narSize: 1, references: [...references].sort() })).sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}

describe('storePathName', () => {
  it('drops the store directory and the hash', () => {
    assert.equal(storePathName(at(HASH_A, 'glibc-2.36')), 'glibc-2.36');
    assert.equal(storePathName(at(HASH_A, 'glibc-2.36-bin')), 'glibc-2.36-bin');
    assert.equal(storePathName(`/gnu/store/${HASH_B}-hello-2.12`), 'hello-2.12');
    assert.equal(storePathName(`${HASH_B}-hello-2.12`), 'hello-2.12');
  });

  it('keeps a last component that does not start with a store hash', () => {
    assert.equal(storePathName('/nix/store/abc-hello'), 'abc-hello');
    assert.equal(storePathName(`/nix/store/${'e'.repeat(32)}-hello`), `${'e'.repeat(32)}-hello`); // e is not base-32
    assert.equal(storePathName('/nix/store/'), '');
  });
});

describe('pnameOf and storePathPname', () => {
  it('split off the version at the first dash not followed by a letter, like parseDrvName', () => {
    const cases: [string, string][] = [
      ['glibc-2.36', 'glibc'],
      ['glibc-2.36-bin', 'glibc'],
      ['nss-cacert-3.98', 'nss-cacert'],
      ['iana-etc-20231227', 'iana-etc'],
      ['iana-etcetera-2', 'iana-etcetera'],
      ['python3.11-requests-2.31.0', 'python3.11-requests'],
      ['hello', 'hello'],
      ['source', 'source'],
      ['foo-', 'foo-'],
      ['xz-5.4.4-bin', 'xz'],
      ['gcc-12.3.0-lib', 'gcc'],
      ['util-linux-minimal-2.39.2-lib', 'util-linux-minimal'],
    ];
    for (const [name, pname] of cases) {
      assert.equal(pnameOf(name), pname, name);
      assert.equal(storePathPname(at(HASH_A, name)), pname, name);
    }
  });
});

describe('lookUpPopularity', () => {
  it('reads a map or a function and counts unknown or invalid values as 0', () => {
    const map = new Map([['a', 5], ['neg', -1], ['nan', Number.NaN], ['inf', Number.POSITIVE_INFINITY]]);
    assert.equal(lookUpPopularity(map, 'a'), 5);
    assert.equal(lookUpPopularity(map, 'missing'), 0);
    for (const bad of ['neg', 'nan', 'inf']) assert.equal(lookUpPopularity(map, bad), 0, bad);
    assert.equal(lookUpPopularity((name) => (name === 'a' ? 7 : undefined), 'a'), 7);
    assert.equal(lookUpPopularity((name) => (name === 'a' ? 7 : undefined), 'b'), 0);
    assert.equal(lookUpPopularity(undefined, 'a'), 0);
  });
});

describe('reference counts', () => {
  const glibcA = at(HASH_A, 'glibc-2.36');
  const glibcB = at(HASH_B, 'glibc-2.36'); // another build of the same name
  const bash = at(HASH_A, 'bash-5.2');
  const curl = at(HASH_A, 'curl-8.0');
  const git = at(HASH_B, 'git-2.40');
  const zlib = at(HASH_B, 'zlib-1.3');

  //  bash -> glibcA (and itself); curl -> glibcA, glibcB, zlib; zlib -> glibcA; glibcA -> itself
  const one = closure(
    [
      [bash, [bash, glibcA]],
      [curl, [glibcA, glibcB, zlib]],
      [glibcA, [glibcA]],
      [glibcB, []],
      [zlib, [glibcA]],
    ],
    [bash, curl],
  );
  //  git -> glibcA, zlib; zlib (again) -> glibcA; bash (again) -> glibcA
  const two = closure(
    [
      [bash, [bash, glibcA]],
      [git, [glibcA, zlib]],
      [glibcA, [glibcA]],
      [zlib, [glibcA]],
    ],
    [bash, git],
  );

  it('lists the names a path refers to, without itself, sorted and unique', () => {
    assert.deepEqual(referencedNames({ path: curl, narSize: 1, references: [zlib, glibcB, glibcA, curl] }), ['glibc-2.36', 'zlib-1.3']);
    assert.deepEqual(referencedNames({ path: glibcA, narSize: 1, references: [glibcA] }), []);
  });

  it('count, per name, the distinct paths of one graph that refer to it', () => {
    // glibc-2.36: bash, curl (once, though it refers to two glibc builds), zlib; zlib-1.3: curl
    assert.deepEqual([...referenceCounts(one)], [['glibc-2.36', 3], ['zlib-1.3', 1]]);
    assert.deepEqual([...referenceCounts(two)], [['glibc-2.36', 3], ['zlib-1.3', 1]]);
    assert.deepEqual([...referenceCounts({ roots: [], paths: [] })], []);
  });

  it('count only the referrers accepted, for per-build increments', () => {
    const newPaths = new Set([git]); // bash, glibcA and zlib were seen in an earlier build
    assert.deepEqual([...referenceCounts(two, (path) => newPaths.has(path))], [['glibc-2.36', 1], ['zlib-1.3', 1]]);
  });

  it('count distinct referrers across graphs, so a path in several graphs counts once', () => {
    // glibc-2.36: bash, curl, zlib, git; zlib-1.3: curl, git
    const expected = [['glibc-2.36', 4], ['zlib-1.3', 2]];
    assert.deepEqual([...popularityFromGraphs([one, two])], expected);
    assert.deepEqual([...popularityFromGraphs([two, one])], expected);
    assert.deepEqual([...popularityFromGraphs([one, two, one])], expected);
    // The same as adding per-build increments of paths not seen before:
    const seen = new Set<string>();
    const total = new Map<string, number>();
    for (const graph of [one, two]) {
      const fresh = new Set(graph.paths.map((info) => info.path).filter((path) => !seen.has(path)));
      for (const path of fresh) seen.add(path);
      for (const [name, n] of referenceCounts(graph, (path) => fresh.has(path))) total.set(name, (total.get(name) ?? 0) + n);
    }
    assert.deepEqual([...total].sort(), expected);
  });
});
