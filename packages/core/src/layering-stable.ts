// Stable layering (LAYERING_VERSION 4, docs/layering.md "Stable layering"): a layer comes out the same
// in every image that holds its paths, which is what lets a client that pulls image after image
// download each shared path once.
//
// Nixery's layers (layering.ts) depend on the image they are planned for, and on popularity that the
// farm is still learning: a path used by a few packages is dominated by whichever of them the image
// happens to request (`git` alone and `git curl` group curl's libraries differently), a path becomes
// "popular" and moves out of its group the day its count passes a threshold, and past the budget
// every low-rated candidate of the image is piled into one layer that only that image has. The
// benchmark (bench/layering.ts) measured each of those, and what is left here is the plan that is
// the same whatever the other packages and whatever popularity says:
//
//  1. Every store path is a layer of its own: a path's layer key is then the same in every image.
//  2. Budget: while there are more layers than the budget, the smallest paths (bytes; ties: store
//     path) are piled into one layer. Every image's pile is its own, so it is made as small as it
//     can be: the budget - 1 biggest paths stay alone, shared by every image that has them.
//  3. Order: as Nixery, rating popularity(path) x closure size, highest first; the pile's rating is
//     the sum of its paths'. Popularity only orders the manifest, so learning it changes no layer.
//
// The knobs of StableLayerTuning reproduce the other ideas the benchmark tried (dominator groups,
// a lower popularity threshold, coalescing, other pile orders); the worker uses the defaults.
// A pure, deterministic function of (graph, popularity, forced names, budget), like `planLayers`.
import type { ClosureGraph } from './closure-graph.js';
import { immediateDominators } from './dominators.js';
import { BIG_CLOSURE_BYTES, FORCED_POPULARITY, type LayerPlanOptions, type PlannedLayer } from './layering.js';
import { addEdgesToUnreachable, compare, computeClosureSizes, finite, numberClosure } from './layering-graph.js';
import { lookUpPopularity, storePathName, storePathPname } from './popularity.js';

/** Ideas the benchmark compares (docs/layering.md, "Ideas tried"); STABLE_LAYER_TUNING is the plan. */
export interface StableLayerTuning {
  /**
   * `paths`: every path is a group (step 1). `dominators`: Nixery's candidates, with a root edge to
   * every requested, big, forced or popular (>= headThreshold) path.
   */
  grouping: 'paths' | 'dominators';
  /** With `dominators`: the popularity from which a path heads a group. */
  headThreshold: number;
  /**
   * With `dominators`: a head whose referrers are all in the image (as many as its popularity
   * counts) and all in one other group joins that group (repeated until nothing changes).
   */
  coalesce: boolean;
  /** Which groups go into the pile first: the fewest bytes, Nixery's rating, or bytes x popularity. */
  pileBy: 'bytes' | 'rating' | 'weighted';
}

export const STABLE_LAYER_TUNING: Readonly<StableLayerTuning> = Object.freeze({
  grouping: 'paths',
  headThreshold: 2,
  coalesce: false,
  pileBy: 'bytes',
});

interface Group {
  /** Node numbers, ascending. */
  nodes: number[];
  head: number;
  bytes: number;
  rating: number;
}

/**
 * Plans the store-path layers of an image so that they are the same in every image (see the
 * header): at most `options.budget` layers, every path of `graph` in exactly one, highest rating
 * first (ties: first store path). Throws as `planLayers` does: RangeError for a budget that is not
 * a whole number >= 1, Error for a path listed twice, a bad NAR size or a missing reference.
 */
export function planStableLayers(graph: ClosureGraph, options: LayerPlanOptions, tuning: Readonly<StableLayerTuning> = STABLE_LAYER_TUNING): PlannedLayer[] {
  const { budget } = options;
  if (!Number.isSafeInteger(budget) || budget < 1) {
    throw new RangeError(`planStableLayers: the layer budget must be a whole number >= 1, got ${budget}`);
  }
  const { paths, narSizes, references, find } = numberClosure(graph, 'planStableLayers');
  const count = paths.length;
  const roots = graph.roots.map((root) => find(root));
  const closureSizes = computeClosureSizes(references, narSizes);

  const forcedNames = new Set(options.forcedPopular ?? []);
  const forced = new Uint8Array(count);
  const popularity = paths.map((path, i) => {
    const own = lookUpPopularity(options.popularity, storePathName(path));
    if (forcedNames.size > 0 && forcedNames.has(storePathPname(path))) {
      forced[i] = 1;
      return Math.max(own, FORCED_POPULARITY);
    }
    return own;
  });

  // 1. Groups: the head of each node's group (itself, or with `dominators` its dominator-tree
  // ancestor below the root).
  const groupOf = tuning.grouping === 'paths' ? Int32Array.from({ length: count }, (_, i) => i) : dominatorGroups(references, roots, closureSizes, popularity, forced, tuning);

  const byHead = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const head = groupOf[i] as number;
    const nodes = byHead.get(head);
    if (nodes === undefined) byHead.set(head, [i]);
    else nodes.push(i);
  }
  const groups: Group[] = [...byHead].map(([head, nodes]) => {
    let bytes = 0;
    let size = 0;
    for (const node of nodes) {
      bytes += narSizes[node] as number;
      size += closureSizes[node] as number;
    }
    return { nodes, head, bytes, rating: finite(Math.max(1, popularity[head] as number) * size) };
  });

  // 2. Budget: the first groups in pile order share one layer. Sums run in node order.
  let layers = groups;
  if (groups.length > budget) {
    const key =
      tuning.pileBy === 'bytes'
        ? (g: Group) => g.bytes
        : tuning.pileBy === 'weighted'
          ? (g: Group) => g.bytes * Math.max(1, popularity[g.head] as number)
          : (g: Group) => g.rating;
    groups.sort((a, b) => compare(key(a), key(b)) || (a.nodes[0] as number) - (b.nodes[0] as number));
    const pile = groups.slice(0, groups.length - budget + 1);
    const nodes = pile.flatMap((g) => g.nodes).sort((a, b) => a - b);
    let rating = 0;
    for (const g of [...pile].sort((a, b) => (a.nodes[0] as number) - (b.nodes[0] as number))) rating += g.rating;
    layers = [{ nodes, head: nodes[0] as number, bytes: 0, rating: finite(rating) }, ...groups.slice(groups.length - budget + 1)];
  }

  // 3. Manifest order: highest rating first; ties by first store path (layers are disjoint).
  layers.sort((a, b) => compare(b.rating, a.rating) || (a.nodes[0] as number) - (b.nodes[0] as number));
  return layers.map(({ nodes, rating }) => {
    let narSize = 0;
    for (const node of nodes) narSize += narSizes[node] as number;
    return { storePaths: nodes.map((node) => paths[node] as string), narSize, rating };
  });
}

/** `grouping: 'dominators'`: Nixery's candidates with the tuning's threshold, then coalescing. */
function dominatorGroups(
  references: readonly (readonly number[])[],
  roots: readonly number[],
  closureSizes: Float64Array,
  popularity: readonly number[],
  forced: Uint8Array,
  tuning: Readonly<StableLayerTuning>,
): Int32Array {
  const count = references.length;
  const requested = new Uint8Array(count);
  const big = new Uint8Array(count);
  const rootEdges = new Set<number>();
  for (const root of roots) {
    requested[root] = 1;
    rootEdges.add(root);
  }
  for (let i = 0; i < count; i++) {
    if ((closureSizes[i] as number) > BIG_CLOSURE_BYTES) big[i] = 1;
    if (big[i] === 1 || forced[i] === 1 || (popularity[i] as number) >= tuning.headThreshold) rootEdges.add(i);
  }
  addEdgesToUnreachable(references, rootEdges);
  const idom = immediateDominators([...references, [...rootEdges].sort((a, b) => a - b)], count);

  // Union-find over the nodes, each first joined to the child of the root above it.
  const parent = new Int32Array(count);
  const findGroup = (i: number): number => {
    let r = i;
    while (parent[r] !== r) r = parent[r] as number;
    while (parent[i] !== r) {
      const next = parent[i] as number;
      parent[i] = r;
      i = next;
    }
    return r;
  };
  for (let i = 0; i < count; i++) {
    let top = i;
    while (idom[top] !== count) top = idom[top] as number;
    parent[i] = top;
  }

  if (tuning.coalesce) {
    // Unions only, and a head's condition can only become true as groups join: the fixpoint does
    // not depend on the order heads are visited in.
    const referrers: number[][] = Array.from({ length: count }, () => []);
    for (let i = 0; i < count; i++) for (const j of references[i] as readonly number[]) (referrers[j] as number[]).push(i);
    const heads = [...rootEdges].filter((h) => idom[h] === count && requested[h] === 0 && forced[h] === 0).sort((a, b) => a - b);
    let changed = true;
    while (changed) {
      changed = false;
      for (const h of heads) {
        const from = referrers[h] as number[];
        if (from.length === 0 || from.length < (popularity[h] as number)) continue;
        const own = findGroup(h);
        const target = findGroup(from[0] as number);
        if (target === own || !from.every((r) => findGroup(r) === target)) continue;
        parent[own] = target;
        changed = true;
      }
    }
  }
  const groupOf = new Int32Array(count);
  for (let i = 0; i < count; i++) groupOf[i] = findGroup(i);
  return groupOf;
}
