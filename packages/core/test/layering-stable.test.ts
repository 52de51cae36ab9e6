// Stable layering (LAYERING_VERSION 4, docs/layering.md "Stable layering"): hand-drawn closures
// worked out in the comments, the contract (budget, every path once, determinism) over seeded random
// graphs, and the point of it: over a constructed pull sequence a client downloads no more than
// with Nixery's plan, and layers do not move when popularity does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FORCED_POPULAR_PNAMES,
  FORCED_POPULARITY,
  STABLE_LAYER_TUNING,
  layerKey,
  planLayers,
  planStableLayers,
  type ClosureGraph,
  type PlannedLayer,
  type StableLayerTuning,
} from '../src/index.js';
import { prng, shuffled } from '../../../test/helpers/random.js';
import { MB, closure, layer, p, pop, randomClosure, reordered } from './closures.js';


describe('planStableLayers on hand-drawn closures', () => {
  //  app:10 -> lib:4, data:3;  lib -> glibc:30;  data -> glibc
  //  closures: glibc 30, lib 34, data 33, app 47
  //  one layer per path, rating max(1, popularity) x closure: glibc 200 x 30 = 6000
  const graph = closure({ app: [10, ['lib', 'data']], lib: [4, ['glibc']], data: [3, ['glibc']], glibc: [30] }, ['app']);

  it('gives every path a layer of its own while the budget allows', () => {
    assert.deepEqual(planStableLayers(graph, { budget: 94, popularity: pop({ glibc: 200 }) }), [
      layer(['glibc'], 30, 6000),
      layer(['app'], 10, 47),
      layer(['lib'], 4, 34),
      layer(['data'], 3, 33),
    ]);
  });

  //  budget 2: the 3 smallest paths (data 3, lib 4, app 10) share the pile, rated 47 + 34 + 33 = 114;
  //  budget 3 (no popularity): data and lib, 34 + 33 = 67, above app 47 and glibc 30; budget 1: 144
  it('piles the smallest paths past the budget and keeps the biggest alone', () => {
    assert.deepEqual(planStableLayers(graph, { budget: 2, popularity: pop({ glibc: 200 }) }), [
      layer(['glibc'], 30, 6000),
      layer(['app', 'data', 'lib'], 17, 114),
    ]);
    assert.deepEqual(planStableLayers(graph, { budget: 3 }), [layer(['data', 'lib'], 7, 67), layer(['app'], 10, 47), layer(['glibc'], 30, 30)]);
    assert.deepEqual(planStableLayers(graph, { budget: 1 }), [layer(['app', 'data', 'glibc', 'lib'], 47, 144)]);
  });

  //  Equal sizes: the pile takes the first store paths.
  it('breaks size ties by store path', () => {
    const even = closure({ a: [5], b: [5], c: [5] }, ['a', 'b', 'c']);
    assert.deepEqual(planStableLayers(even, { budget: 2 }), [layer(['a', 'b'], 10, 10), layer(['c'], 5, 5)]);
  });

  it('changes the order of layers, never the layers, when popularity changes', () => {
    const keys = (layers: PlannedLayer[]): string[] => layers.map((l) => layerKey(l.storePaths)).sort();
    for (const budget of [1, 2, 3, 94]) {
      const plain = planStableLayers(graph, { budget });
      for (const popularity of [pop({ glibc: 200 }), pop({ lib: 5000, data: 1 }), pop({ app: 150, glibc: 3 })]) {
        assert.deepEqual(keys(planStableLayers(graph, { budget, popularity })), keys(plain), `budget ${budget}`);
      }
    }
  });

  it('puts forced-popular paths first', () => {
    const certs = closure({ app: [10, ['nss-cacert-3.98']], 'nss-cacert-3.98': [3] }, ['app']);
    assert.deepEqual(planStableLayers(certs, { budget: 10, forcedPopular: FORCED_POPULAR_PNAMES }), [
      layer(['nss-cacert-3.98'], 3, 3 * FORCED_POPULARITY),
      layer(['app'], 10, 13),
    ]);
  });

  it('ignores self-references and places paths the roots do not reach', () => {
    const odd = closure({ a: [1, ['a', 'b']], b: [2], x: [1, ['y']], y: [2, ['x']] }, []);
    assert.deepEqual(planStableLayers(odd, { budget: 10 }), [layer(['a'], 1, 3), layer(['x'], 1, 3), layer(['y'], 2, 3), layer(['b'], 2, 2)]);
  });

  it('returns no layers for an empty closure', () => {
    assert.deepEqual(planStableLayers({ roots: [], paths: [] }, { budget: 5 }), []);
  });

  it('refuses a bad budget or a malformed closure graph, as planLayers does', () => {
    for (const budget of [0, -1, 1.5, Number.NaN]) assert.throws(() => planStableLayers(graph, { budget }), RangeError);
    const info = { path: p('a'), narSize: 1, references: [] };
    assert.throws(() => planStableLayers({ roots: [], paths: [info, info] }, { budget: 5 }), /listed twice/);
    assert.throws(() => planStableLayers({ roots: [], paths: [{ ...info, narSize: -1 }] }, { budget: 5 }), /NAR size/);
    assert.throws(() => planStableLayers({ roots: [], paths: [{ ...info, references: [p('b')] }] }, { budget: 5 }), /not in the closure graph/);
    assert.throws(() => planStableLayers({ roots: [p('b')], paths: [info] }, { budget: 5 }), /root .* not in the closure graph/);
  });
});


const TUNINGS: [string, StableLayerTuning][] = [
  ['default', STABLE_LAYER_TUNING],
  ['dominators + coalescing', { ...STABLE_LAYER_TUNING, grouping: 'dominators', headThreshold: 2, coalesce: true }],
  ['dominators, pile by rating', { ...STABLE_LAYER_TUNING, grouping: 'dominators', headThreshold: 100, pileBy: 'rating' }],
];

describe('planStableLayers properties', () => {
  for (const [name, tuning] of TUNINGS) {
    it(`puts every path in exactly one layer, within budget, ordered by rating (${name})`, () => {
      const random = prng(7);
      for (let round = 0; round < 200; round++) {
        const { graph, popularity } = randomClosure(random, 1 + Math.floor(random() * 60), { share: 0.5, below: 4 });
        const budget = 1 + Math.floor(random() * 12);
        const layers = planStableLayers(graph, { budget, popularity }, tuning);
        const message = `round ${round}`;
        assert.ok(layers.length >= 1 && layers.length <= budget, message);
        assert.deepEqual(layers.flatMap((l) => l.storePaths).sort(), graph.paths.map((info) => info.path), message);
        const narSizeOf = new Map(graph.paths.map((info) => [info.path, info.narSize]));
        for (const l of layers) {
          assert.deepEqual(l.storePaths, [...l.storePaths].sort(), message);
          assert.equal(l.narSize, l.storePaths.reduce((sum, path) => sum + (narSizeOf.get(path) ?? Number.NaN), 0), message);
        }
        for (let i = 1; i < layers.length; i++) {
          const [a, b] = [layers[i - 1] as PlannedLayer, layers[i] as PlannedLayer];
          assert.ok(a.rating > b.rating || (a.rating === b.rating && (a.storePaths[0] as string) < (b.storePaths[0] as string)), message);
        }
      }
    });

    it(`does not depend on the order of paths, references, roots or popularity (${name})`, () => {
      const random = prng(42);
      for (let round = 0; round < 50; round++) {
        const { graph, popularity } = randomClosure(random, 1 + Math.floor(random() * 80), { share: 0.5, below: 4 });
        const budget = 1 + Math.floor(random() * 10);
        const expected = planStableLayers(graph, { budget, popularity }, tuning);
        assert.deepEqual(planStableLayers(reordered(graph, random), { budget, popularity: new Map(shuffled([...popularity], random)) }, tuning), expected, `round ${round}`);
        assert.deepEqual(planStableLayers(graph, { budget, popularity }, tuning), expected, `round ${round}: again`);
      }
    });
  }

  it('keeps the budget - 1 biggest paths alone', () => {
    const random = prng(11);
    for (let round = 0; round < 100; round++) {
      const { graph } = randomClosure(random, 5 + Math.floor(random() * 60), { share: 0.5, below: 4 });
      const budget = 1 + Math.floor(random() * (graph.paths.length - 1));
      const layers = planStableLayers(graph, { budget });
      assert.equal(layers.length, budget);
      const biggest = [...graph.paths].sort((a, b) => b.narSize - a.narSize || (a.path < b.path ? 1 : -1)).slice(0, budget - 1);
      const alone = new Set(layers.filter((l) => l.storePaths.length === 1).map((l) => l.storePaths[0]));
      for (const info of biggest) assert.ok(alone.has(info.path), `round ${round}: ${info.path} alone`);
    }
  });
});

describe('planStableLayers against planLayers on a pull sequence', () => {
  //  A small world: glibc under everything, libssl and libz shared, each app with a private lib.
  //  A client pulls images of 1-3 apps with a budget of 6, as the bench does at scale.
  const world: Record<string, [number, string[]?]> = {
    'glibc-2.38': [30 * MB],
    'libz-1.3': [1 * MB, ['glibc-2.38']],
    'libssl-3.0': [6 * MB, ['glibc-2.38', 'libz-1.3']],
    'curl-8.4': [2 * MB, ['libcurl-8.4']],
    'libcurl-8.4': [1 * MB, ['libssl-3.0', 'libz-1.3']],
    'git-2.42': [40 * MB, ['libcurl-8.4', 'perl-5.38', 'libpcre-10.42']],
    'libpcre-10.42': [1 * MB, ['glibc-2.38']],
    'perl-5.38': [50 * MB, ['glibc-2.38']],
    'python-3.11': [60 * MB, ['libssl-3.0', 'libz-1.3', 'libffi-3.4']],
    'libffi-3.4': [0.2 * MB, ['glibc-2.38']],
    'openssh-9.6': [4 * MB, ['libssl-3.0']],
    'jq-1.7': [0.5 * MB, ['libonig-6.9']],
    'libonig-6.9': [0.6 * MB, ['glibc-2.38']],
  };
  const apps = ['curl-8.4', 'git-2.42', 'python-3.11', 'openssh-9.6', 'jq-1.7'];
  const imageOf = (roots: string[]): ClosureGraph => {
    const seen = new Set<string>();
    const stack = [...roots];
    while (stack.length > 0) {
      const name = stack.pop() as string;
      if (seen.has(name)) continue;
      seen.add(name);
      stack.push(...((world[name] as [number, string[]?])[1] ?? []));
    }
    return closure(Object.fromEntries([...seen].map((n) => [n, world[n] as [number, string[]?]])), roots);
  };
  const popularity = pop({ 'glibc-2.38': 500, 'libz-1.3': 120, 'libssl-3.0': 110, 'libcurl-8.4': 40, 'perl-5.38': 90 });

  const downloaded = (plan: (graph: ClosureGraph) => PlannedLayer[], pulls: string[][]): number => {
    const cache = new Set<string>();
    let bytes = 0;
    for (const roots of pulls) {
      for (const l of plan(imageOf(roots))) {
        const key = layerKey(l.storePaths);
        if (!cache.has(key)) {
          cache.add(key);
          bytes += l.narSize;
        }
      }
    }
    return bytes;
  };

  it('downloads no more than Nixery does, and no more than what was pulled plus the piles', () => {
    const random = prng(16);
    const pulls = Array.from({ length: 40 }, () => shuffled(apps, random).slice(0, 1 + Math.floor(random() * 3)));
    const options = { budget: 6, popularity, forcedPopular: FORCED_POPULAR_PNAMES };
    const stable = downloaded((g) => planStableLayers(g, options), pulls);
    const nixery = downloaded((g) => planLayers(g, options), pulls);
    const bound = downloaded((g) => g.paths.map((info) => ({ storePaths: [info.path], narSize: info.narSize, rating: 0 })), pulls);
    assert.ok(stable >= bound, `stable ${stable} >= the bound ${bound}`);
    assert.ok(stable <= nixery, `stable ${stable} <= Nixery ${nixery}`);
    // With a budget of 6, Nixery piles curl's and jq's small libraries with whatever else the image
    // has; the stable plan's piles hold only an image's 6 - 1 smallest paths.
    assert.ok(stable - bound < (nixery - bound) / 2, `stable ${stable} closes over half of Nixery's gap (${nixery} - ${bound})`);
  });
});
