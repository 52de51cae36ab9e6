// Layering (the simple rule): hand-drawn closures with the expected layers written out by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupLayers, type ClosureGraph } from '../src/index.js';

const p = (name: string): string => `/nix/store/${name}`;

/** A closure of the given paths and NAR sizes (references do not matter to this rule). */
function closure(sizes: Record<string, number>): ClosureGraph {
  const paths = Object.entries(sizes)
    .map(([name, narSize]) => ({ path: p(name), narSize, references: [] }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  return { roots: paths.slice(0, 1).map((info) => info.path), paths };
}

describe('groupLayers', () => {
  it('gives one layer per path when the budget allows, largest first, ties by path', () => {
    const graph = closure({ 'g-glibc': 30, 'b-bash': 10, 'h-hello': 10, 'c-coreutils': 20 });
    const expected = [
      { storePaths: [p('g-glibc')], narSize: 30 },
      { storePaths: [p('c-coreutils')], narSize: 20 },
      { storePaths: [p('b-bash')], narSize: 10 },
      { storePaths: [p('h-hello')], narSize: 10 },
    ];
    assert.deepEqual(groupLayers(graph, 4), expected);
    assert.deepEqual(groupLayers(graph, 100), expected);
  });

  //  a:1 b:2 c:3 e:4 d:10, budget 3
  //  merge a→b: {a,b}:3  (ties with c:3; {a,b} sorts first by its first path)
  //  merge {a,b}→c: {a,b,c}:6
  //  left: d:10, {a,b,c}:6, e:4
  it('merges the smallest layer into the next smallest until the budget is met', () => {
    const graph = closure({ a: 1, b: 2, c: 3, d: 10, e: 4 });
    assert.deepEqual(groupLayers(graph, 3), [
      { storePaths: [p('d')], narSize: 10 },
      { storePaths: [p('a'), p('b'), p('c')], narSize: 6 },
      { storePaths: [p('e')], narSize: 4 },
    ]);
  });

  //  p:5 q:5 r:5 s:5, budget 2: p→q {p,q}:10, then r→s {r,s}:10; equal sizes, ordered by first path
  it('breaks size ties by first store path, everywhere', () => {
    const graph = closure({ s: 5, r: 5, q: 5, p: 5 });
    assert.deepEqual(groupLayers(graph, 2), [
      { storePaths: [p('p'), p('q')], narSize: 10 },
      { storePaths: [p('r'), p('s')], narSize: 10 },
    ]);
  });

  //  x:1 b:2 y:50, budget 2: x→b gives {b,x}:3 (paths sorted, not in merge order)
  it('keeps the paths of a merged layer sorted', () => {
    assert.deepEqual(groupLayers(closure({ x: 1, b: 2, y: 50 }), 2), [
      { storePaths: [p('y')], narSize: 50 },
      { storePaths: [p('b'), p('x')], narSize: 3 },
    ]);
  });

  //  a:1 b:1 c:1 d:100, budget 2: a→b {a,b}:2; c:1 is now smallest: c→{a,b} {a,b,c}:3
  it('merges into the next smallest layer, which may be an earlier merge', () => {
    assert.deepEqual(groupLayers(closure({ a: 1, b: 1, c: 1, d: 100 }), 2), [
      { storePaths: [p('d')], narSize: 100 },
      { storePaths: [p('a'), p('b'), p('c')], narSize: 3 },
    ]);
  });

  it('puts everything in one layer for a budget of one', () => {
    assert.deepEqual(groupLayers(closure({ b: 7, a: 0, c: 3 }), 1), [
      { storePaths: [p('a'), p('b'), p('c')], narSize: 10 },
    ]);
  });

  it('returns no layers for an empty closure', () => {
    assert.deepEqual(groupLayers({ roots: [], paths: [] }, 5), []);
  });

  it('refuses a budget below one or not whole', () => {
    const graph = closure({ a: 1 });
    for (const budget of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => groupLayers(graph, budget), RangeError, `budget ${budget}`);
    }
  });

  it('refuses a path listed twice and a negative NAR size', () => {
    const info = { path: p('a'), narSize: 1, references: [] };
    assert.throws(() => groupLayers({ roots: [], paths: [info, info] }, 5), /listed twice/);
    assert.throws(() => groupLayers({ roots: [], paths: [{ ...info, narSize: -1 }] }, 5), /NAR size/);
  });

  it('puts every path in exactly one layer, within budget, whatever the input order', () => {
    const sizes: Record<string, number> = {};
    for (let i = 0; i < 300; i++) sizes[`${String(i).padStart(3, '0')}-pkg`] = (i * 7919) % 1000;
    const graph = closure(sizes);
    const layers = groupLayers(graph, 20);
    assert.equal(layers.length, 20);
    const all = layers.flatMap((layer) => layer.storePaths).sort();
    assert.deepEqual(all, graph.paths.map((info) => info.path));
    for (const layer of layers) {
      assert.deepEqual(layer.storePaths, [...layer.storePaths].sort());
      assert.equal(layer.narSize, layer.storePaths.reduce((sum, path) => sum + (sizes[path.slice(11)] ?? NaN), 0));
    }
    for (let i = 1; i < layers.length; i++) {
      assert.ok((layers[i - 1]?.narSize ?? 0) >= (layers[i]?.narSize ?? 0));
    }
    const reversed = { roots: graph.roots, paths: [...graph.paths].reverse() };
    assert.deepEqual(groupLayers(reversed, 20), layers);
  });
});
