// Dominators of a directed graph: node d dominates node n when every path from the root to n
// passes through d; n's immediate dominator is its closest strict dominator, and the immediate
// dominators form a tree (the dominator tree). Layering (docs/design.md §4) takes its candidate layers from
// that tree. This is Cooper, Harvey and Kennedy's iterative algorithm ("A Simple, Fast Dominance
// Algorithm", 2001): number the nodes in postorder, then, visiting them in reverse postorder until
// nothing changes, set each node's dominator to the common ancestor (in the tree built so far) of
// its already-processed predecessors. It handles any graph (cycles, irreducible loops); the result
// is unique, so it does not depend on the order of the successor lists.

/**
 * Immediate dominators of the nodes `0 .. successors.length - 1` reachable from `root`, where
 * `successors[n]` lists the targets of n's edges (duplicates and self-edges are harmless).
 * Returns an array `idom` with `idom[root] === root`, `idom[n]` the immediate dominator of every
 * other reachable n, and -1 for nodes that `root` does not reach.
 * Throws RangeError for a root or an edge target that is not a node.
 */
export function immediateDominators(successors: ReadonlyArray<ReadonlyArray<number>>, root: number): Int32Array {
  const count = successors.length;
  const isNode = (n: number): boolean => Number.isInteger(n) && n >= 0 && n < count;
  if (!isNode(root)) throw new RangeError(`immediateDominators: root ${root} is not a node of ${count}`);

  // Postorder by an iterative depth-first search (recursion would overflow on long chains).
  const postNumber = new Int32Array(count).fill(-1);
  const order: number[] = []; // nodes in postorder
  const visited = new Uint8Array(count);
  const stack: number[] = [root];
  const nextEdge: number[] = [0];
  visited[root] = 1;
  while (stack.length > 0) {
    const top = stack.length - 1;
    const node = stack[top] as number;
    const edges = successors[node] as ReadonlyArray<number>;
    const i = nextEdge[top] as number;
    if (i < edges.length) {
      nextEdge[top] = i + 1;
      const next = edges[i] as number;
      if (!isNode(next)) throw new RangeError(`immediateDominators: edge ${node} -> ${next} leads to no node`);
      if (visited[next] === 0) {
        visited[next] = 1;
        stack.push(next);
        nextEdge.push(0);
      }
    } else {
      stack.pop();
      nextEdge.pop();
      postNumber[node] = order.length;
      order.push(node);
    }
  }

  // Predecessors among the reachable nodes only (edges from unreachable nodes do not count).
  const predecessors: number[][] = Array.from({ length: count }, () => []);
  for (const node of order) {
    for (const next of successors[node] as ReadonlyArray<number>) (predecessors[next] as number[]).push(node);
  }

  const idom = new Int32Array(count).fill(-1);
  idom[root] = root;
  // Walks both fingers up the tree built so far until they meet; postorder numbers grow upwards.
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while ((postNumber[a] as number) < (postNumber[b] as number)) a = idom[a] as number;
      while ((postNumber[b] as number) < (postNumber[a] as number)) b = idom[b] as number;
    }
    return a;
  };

  let changed = true;
  while (changed) {
    changed = false;
    for (let k = order.length - 2; k >= 0; k--) {
      // Reverse postorder, skipping the root (last in postorder).
      const node = order[k] as number;
      let candidate = -1;
      for (const pred of predecessors[node] as number[]) {
        if (idom[pred] === -1) continue; // not processed yet
        candidate = candidate === -1 ? pred : intersect(pred, candidate);
      }
      if (idom[node] !== candidate) {
        idom[node] = candidate;
        changed = true;
      }
    }
  }
  return idom;
}
