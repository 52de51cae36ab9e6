// Layering: which store paths share an image layer (docs/design.md §4, after Nixery's "popularity +
// dominator tree" design). Registries and runtimes cap the number of layers and a closure easily
// has hundreds of paths, so paths are grouped; the grouping decides what different images share.
//
//  1. Graph: a virtual root with an edge to every requested output (the graph's roots) and to every
//     "big or popular" path, plus the reference edges between paths (self-references dropped).
//  2. Dominator tree of that graph. Each child of the root, with everything it dominates, is one
//     candidate layer: the paths only reachable through it. A big or popular path is dominated by
//     the root alone (it has an edge from it), so it always heads a candidate of its own.
//  3. Rating of a candidate: popularity(head) x sum over its paths of their closure sizes.
//  4. While there are more candidates than the budget, the lowest-rated merges into the next.
//  5. Layers are returned highest rating first: the order manifests list them in.
//
// It is a pure, deterministic function of (graph, popularity, forced names, budget): the input's
// order does not matter (paths are numbered in sorted order, and the dominator tree is unique), and
// every comparison ends on the store path, so every replica plans the same layers.
import type { ClosureGraph } from './closure-graph.js';
import { immediateDominators } from './dominators.js';
import { addEdgesToUnreachable, compare, computeClosureSizes, finite, numberClosure } from './layering-graph.js';
import { lookUpPopularity, storePathName, storePathPname, type PopularitySource } from './popularity.js';

/**
 * A path whose closure (itself plus everything it refers to, transitively) is over this many bytes
 * is "big" and gets a layer of its own. Decimal megabytes: 100 MB = 100 * 1000 * 1000 bytes, as in
 * Nixery; "over" is strictly greater.
 */
export const BIG_CLOSURE_BYTES = 100 * 1000 * 1000;

/** A path whose name has at least this popularity is "popular" and gets a layer of its own. */
export const POPULAR_THRESHOLD = 100;

/**
 * Popularity given to forced-popular paths (when their own is lower): far above any real reference
 * count (nixpkgs has ~100k packages; glibc, the most referenced, has a few hundred thousand
 * referrers at most), so their layers rate high and are merged last. Nixery does the same for the
 * paths it adds to every image.
 */
export const FORCED_POPULARITY = 1_000_000;

/**
 * Package names (pnames, see `storePathPname`) that every image carries and so should always be
 * layers of their own: the CA bundle (attribute `cacert`, store path `nss-cacert-<version>`) and
 * `iana-etc`. A suggestion for `forcedPopular`; layering forces nothing by itself.
 */
export const FORCED_POPULAR_PNAMES: readonly string[] = Object.freeze(['iana-etc', 'nss-cacert']);

export interface PlannedLayer {
  /** The layer's store paths, sorted (code-unit order). */
  storePaths: string[];
  /** Sum of the paths' NAR sizes. */
  narSize: number;
  /**
   * Merge rating (>= 0, finite): popularity(head) x sum of the paths' closure sizes; a merged
   * layer's is the sum of its parts'. Layers are listed by it, highest first.
   */
  rating: number;
}

export interface LayerPlanOptions {
  /** Most store-path layers to plan: the image's layer limit minus the symlink layer. Whole, >= 1. */
  budget: number;
  /** Popularity by store-path name (`storePathName`); unknown names count 0. */
  popularity?: PopularitySource;
  /**
   * Package names (pnames, matched with `storePathPname`, so versions do not matter) whose paths
   * count as popular whatever their popularity, with popularity at least FORCED_POPULARITY, e.g.
   * FORCED_POPULAR_PNAMES.
   */
  forcedPopular?: ReadonlySet<string> | readonly string[];
}

interface Candidate {
  /** Node numbers = indexes into the sorted paths, ascending (so the paths are sorted too). */
  nodes: number[];
  rating: number;
}

/**
 * Plans the store-path layers of an image: at most `options.budget` layers, every path of `graph`
 * in exactly one, listed highest rating first (ties: first store path).
 * Throws RangeError when the budget is not a whole number >= 1, and Error when a path is listed
 * twice, has a NAR size that is not a finite number >= 0, or refers to (or is a root that is) a
 * path missing from the graph.
 */
export function planLayers(graph: ClosureGraph, options: LayerPlanOptions): PlannedLayer[] {
  const { budget } = options;
  if (!Number.isSafeInteger(budget) || budget < 1) {
    throw new RangeError(`planLayers: the layer budget must be a whole number >= 1, got ${budget}`);
  }

  const { paths, narSizes, references, find } = numberClosure(graph, 'planLayers');
  const count = paths.length;

  const closureSizes = computeClosureSizes(references, narSizes);

  // Popularity per path. The thresholds use it as given; forced-popular paths get at least
  // FORCED_POPULARITY.
  const forced = new Set(options.forcedPopular ?? []);
  const popularity = paths.map((path) => {
    const own = lookUpPopularity(options.popularity, storePathName(path));
    return forced.size > 0 && forced.has(storePathPname(path)) ? Math.max(own, FORCED_POPULARITY) : own;
  });

  // The virtual root is node `count`.
  const rootEdges = new Set<number>();
  for (const root of graph.roots) rootEdges.add(find(root));
  for (let i = 0; i < count; i++) {
    if ((closureSizes[i] as number) > BIG_CLOSURE_BYTES || (popularity[i] as number) >= POPULAR_THRESHOLD) rootEdges.add(i);
  }
  addEdgesToUnreachable(references, rootEdges);
  const successors: number[][] = [...references, [...rootEdges].sort((a, b) => a - b)];
  const idom = immediateDominators(successors, count);

  // Dominator-tree children; every path is reachable now, so idom[i] is a node for all i.
  const children: number[][] = Array.from({ length: count + 1 }, () => []);
  for (let i = 0; i < count; i++) (children[idom[i] as number] as number[]).push(i);

  // Rating: Nixery's "popularity x size", with size the sum of the closure sizes of the layer's
  // paths (Nixery sums the closure size Nix reports for each path). A popularity of 0 (unknown)
  // would rate every such candidate 0 and leave only the path tie-break to order them, so the rating
  // uses at least 1 (as Nixery does for packages missing from its popularity data): unknown heads
  // are then ordered by size. Sums run in node order, so the floating-point result is fixed.
  const candidates: Candidate[] = (children[count] as number[]).map((head) => {
    const nodes: number[] = [];
    const stack = [head];
    while (stack.length > 0) {
      const node = stack.pop() as number;
      nodes.push(node);
      for (const child of children[node] as number[]) stack.push(child);
    }
    nodes.sort((a, b) => a - b);
    let size = 0;
    for (const node of nodes) size += closureSizes[node] as number;
    return { nodes, rating: finite(Math.max(1, popularity[head] as number) * size) };
  });

  // Merging, as in Nixery: sort once by rating ascending (ties: first store path), then the lowest
  // merges into the next, and the merged layer takes that next one's place at the front: it is not
  // re-sorted, so the next merge folds the following candidate into it. The lowest-rated candidates
  // thus pile into one layer and the budget - 1 highest-rated ones stay whole, which is what lets
  // images share them. A merged layer's rating is the sum of its parts' ratings.
  candidates.sort((a, b) => compare(a.rating, b.rating) || (a.nodes[0] as number) - (b.nodes[0] as number));
  let layers = candidates;
  if (candidates.length > budget) {
    const lowest = candidates.slice(0, candidates.length - budget + 1);
    let rating = 0;
    for (const candidate of lowest) rating += candidate.rating;
    const merged = { nodes: lowest.flatMap((candidate) => candidate.nodes).sort((a, b) => a - b), rating: finite(rating) };
    layers = [merged, ...candidates.slice(candidates.length - budget + 1)];
  }

  // Manifest order: highest rating first; ties by first store path (layers are disjoint).
  layers.sort((a, b) => compare(b.rating, a.rating) || (a.nodes[0] as number) - (b.nodes[0] as number));
  return layers.map(({ nodes, rating }) => {
    let narSize = 0;
    for (const node of nodes) narSize += narSizes[node] as number;
    return { storePaths: nodes.map((node) => paths[node] as string), narSize, rating };
  });
}
