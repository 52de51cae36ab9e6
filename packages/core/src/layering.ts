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

  // Number the paths in sorted order: everything after this depends on the numbers only.
  const infos = [...graph.paths].sort((a, b) => byCode(a.path, b.path));
  const count = infos.length;
  const paths = infos.map((info) => info.path);
  const indexOf = new Map<string, number>();
  const narSizes = new Float64Array(count);
  infos.forEach((info, i) => {
    if (indexOf.has(info.path)) throw new Error(`planLayers: store path ${info.path} is listed twice`);
    if (!Number.isFinite(info.narSize) || info.narSize < 0) throw new Error(`planLayers: store path ${info.path} has NAR size ${info.narSize}`);
    indexOf.set(info.path, i);
    narSizes[i] = info.narSize;
  });
  const find = (path: string, referrer?: string): number => {
    const i = indexOf.get(path);
    if (i !== undefined) return i;
    const what = referrer === undefined ? 'root' : `a reference of ${referrer},`;
    throw new Error(`planLayers: ${what} ${path} is not in the closure graph`);
  };
  // Reference edges, ascending and unique. Self-references (Nix records one for most paths) are
  // dropped: they would make a path its own predecessor and say nothing about sharing.
  const seen = new Int32Array(count).fill(-1); // seen[j] === i: i already has an edge to j
  const references: number[][] = infos.map((info, i) => {
    const targets: number[] = [];
    for (const ref of info.references) {
      const j = find(ref, info.path);
      if (j === i || seen[j] === i) continue;
      seen[j] = i;
      targets.push(j);
    }
    return targets.sort((a, b) => a - b);
  });

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

/**
 * Every path must end up in a layer, so every path must be reachable from the virtual root. In a
 * closure from Nix it is (everything is in the roots' closure). For other input, the paths that
 * nothing refers to are treated as requested, and then, for what is still unreachable (a cycle no
 * path leads into), the first such path in sorted order, until nothing is left. Adds to `rootEdges`.
 */
function addEdgesToUnreachable(references: readonly (readonly number[])[], rootEdges: Set<number>): void {
  const count = references.length;
  const referred = new Uint8Array(count);
  for (const targets of references) for (const j of targets) referred[j] = 1;
  const reached = new Uint8Array(count);
  const reach = (from: number): void => {
    const stack = [from];
    reached[from] = 1;
    while (stack.length > 0) {
      for (const next of references[stack.pop() as number] as number[]) {
        if (reached[next] === 0) {
          reached[next] = 1;
          stack.push(next);
        }
      }
    }
  };
  for (const i of rootEdges) if (reached[i] === 0) reach(i);
  for (let i = 0; i < count; i++) {
    if (referred[i] === 0 && reached[i] === 0) {
      rootEdges.add(i);
      reach(i);
    }
  }
  for (let i = 0; i < count; i++) {
    if (reached[i] === 0) {
      rootEdges.add(i);
      reach(i);
    }
  }
}

/**
 * Closure size of every node: the sum of the NAR sizes of the node and everything it reaches.
 * Strongly connected components (Tarjan's algorithm, iterative) come out sinks first, so each
 * component's closure, a bit set over the nodes, is its members plus the closures of the
 * components its edges lead to, all already known. Memory is components x nodes bits.
 */
function computeClosureSizes(references: readonly (readonly number[])[], narSizes: Float64Array): Float64Array {
  const count = references.length;
  const words = (count + 31) >>> 5;
  const component = new Int32Array(count).fill(-1);
  const index = new Int32Array(count).fill(-1);
  const low = new Int32Array(count);
  const onStack = new Uint8Array(count);
  const sccStack: number[] = [];
  const members: number[][] = []; // per component, in the order found (sinks first)
  let nextIndex = 0;

  for (let start = 0; start < count; start++) {
    if (index[start] !== -1) continue;
    const callStack: number[] = [start];
    const edgePos: number[] = [0];
    index[start] = low[start] = nextIndex++;
    sccStack.push(start);
    onStack[start] = 1;
    while (callStack.length > 0) {
      const top = callStack.length - 1;
      const node = callStack[top] as number;
      const targets = references[node] as readonly number[];
      const pos = edgePos[top] as number;
      if (pos < targets.length) {
        edgePos[top] = pos + 1;
        const next = targets[pos] as number;
        if (index[next] === -1) {
          index[next] = low[next] = nextIndex++;
          sccStack.push(next);
          onStack[next] = 1;
          callStack.push(next);
          edgePos.push(0);
        } else if (onStack[next] === 1) {
          low[node] = Math.min(low[node] as number, index[next] as number);
        }
        continue;
      }
      callStack.pop();
      edgePos.pop();
      const parent = callStack[callStack.length - 1];
      if (parent !== undefined) low[parent] = Math.min(low[parent] as number, low[node] as number);
      if (low[node] === index[node]) {
        const id = members.length;
        const group: number[] = [];
        let member: number;
        do {
          member = sccStack.pop() as number;
          onStack[member] = 0;
          component[member] = id;
          group.push(member);
        } while (member !== node);
        members.push(group);
      }
    }
  }

  // Weighted sums of bit sets a byte at a time: byteSums[(k << 8) | b] is the NAR size of the
  // nodes 8k + i for the bits i set in b. Sums of integers below 2^53 are exact in any order.
  const byteSums = new Float64Array(words * 4 * 256);
  for (let k = 0; k < words * 4; k++) {
    const base = k << 8;
    for (let b = 1; b < 256; b++) {
      const lowestBit = 31 - Math.clz32(b & -b);
      const node = (k << 3) + lowestBit;
      byteSums[base + b] = (byteSums[base + (b & (b - 1))] as number) + (node < count ? (narSizes[node] as number) : 0);
    }
  }

  const bits = new Uint32Array(members.length * words);
  const sizes = new Float64Array(count);
  const lastMerged = new Int32Array(members.length).fill(-1);
  for (let id = 0; id < members.length; id++) {
    const group = members[id] as number[];
    const row = id * words;
    for (const node of group) {
      bits[row + (node >>> 5)] = (bits[row + (node >>> 5)] as number) | (1 << (node & 31));
      for (const next of references[node] as readonly number[]) {
        const other = component[next] as number;
        if (other === id || lastMerged[other] === id) continue;
        lastMerged[other] = id;
        const from = other * words;
        for (let w = 0; w < words; w++) bits[row + w] = (bits[row + w] as number) | (bits[from + w] as number);
      }
    }
    let size = 0;
    for (let w = 0; w < words; w++) {
      const word = bits[row + w] as number;
      if (word === 0) continue;
      const base = w << 10; // 4 bytes of 256 entries per word
      size +=
        (byteSums[base | (word & 0xff)] as number) +
        (byteSums[base | 0x100 | ((word >>> 8) & 0xff)] as number) +
        (byteSums[base | 0x200 | ((word >>> 16) & 0xff)] as number) +
        (byteSums[base | 0x300 | (word >>> 24)] as number);
    }
    for (const node of group) sizes[node] = size;
  }
  return sizes;
}

/** Ratings stay finite (layer records store them as JSON) even for absurd popularity values. */
function finite(rating: number): number {
  return Math.min(rating, Number.MAX_VALUE);
}

function compare(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byCode(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
