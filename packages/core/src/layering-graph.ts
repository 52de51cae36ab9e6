// The closure graph as both layering planners see it (layering.ts, layering-stable.ts): paths
// numbered in sorted order, so everything after depends on the numbers only and never on the input's
// order; reference edges as numbers; closure sizes; and the rule that makes every path reachable.
import type { ClosureGraph } from './closure-graph.js';

export interface NumberedClosure {
  /** The store paths, sorted (code-unit order): node i is paths[i]. */
  paths: string[];
  narSizes: Float64Array;
  /** Reference edges per node, ascending and unique, self-references dropped. */
  references: number[][];
  /** The node of a path; throws (naming the referrer, or "root") when it is not in the graph. */
  find(path: string, referrer?: string): number;
}

/**
 * Numbers a closure graph. Throws Error, prefixed with `planner`, when a path is listed twice, has
 * a NAR size that is not a finite number >= 0, or refers to a path missing from the graph.
 */
export function numberClosure(graph: ClosureGraph, planner: string): NumberedClosure {
  const infos = [...graph.paths].sort((a, b) => byCode(a.path, b.path));
  const count = infos.length;
  const paths = infos.map((info) => info.path);
  const indexOf = new Map<string, number>();
  const narSizes = new Float64Array(count);
  infos.forEach((info, i) => {
    if (indexOf.has(info.path)) throw new Error(`${planner}: store path ${info.path} is listed twice`);
    if (!Number.isFinite(info.narSize) || info.narSize < 0) throw new Error(`${planner}: store path ${info.path} has NAR size ${info.narSize}`);
    indexOf.set(info.path, i);
    narSizes[i] = info.narSize;
  });
  const find = (path: string, referrer?: string): number => {
    const i = indexOf.get(path);
    if (i !== undefined) return i;
    const what = referrer === undefined ? 'root' : `a reference of ${referrer},`;
    throw new Error(`${planner}: ${what} ${path} is not in the closure graph`);
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
  return { paths, narSizes, references, find };
}

/**
 * Every path must end up in a layer, so every path must be reachable from the virtual root. In a
 * closure from Nix it is (everything is in the roots' closure). For other input, the paths that
 * nothing refers to are treated as requested, and then, for what is still unreachable (a cycle no
 * path leads into), the first such path in sorted order, until nothing is left. Adds to `rootEdges`.
 */
export function addEdgesToUnreachable(references: readonly (readonly number[])[], rootEdges: Set<number>): void {
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
export function computeClosureSizes(references: readonly (readonly number[])[], narSizes: Float64Array): Float64Array {
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
export function finite(rating: number): number {
  return Math.min(rating, Number.MAX_VALUE);
}

export function compare(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byCode(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
