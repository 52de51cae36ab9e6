// Dominators (Cooper–Harvey–Kennedy): textbook flow graphs with their published idom tables, then a
// brute-force cross-check on seeded random graphs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { immediateDominators } from '../src/dominators.js';
import { prng } from '../../../test/helpers/random.js';

/** A graph over single-letter node names: node i is names[i], edges as adjacency strings. */
function lettered(names: string, edges: Record<string, string>): number[][] {
  return [...names].map((name) => [...(edges[name] ?? '')].map((target) => names.indexOf(target)));
}

/** Immediate dominators as a letter table ("A:R" = R is A's idom), '-' for unreachable. */
function idomTable(names: string, idom: Int32Array): string {
  return [...names].map((name, i) => `${name}:${idom[i] === -1 ? '-' : names[idom[i] as number]}`).join(' ');
}

/** Dominators by definition: d dominates v when v is unreachable from the root once d is removed. */
function bruteForceIdoms(successors: number[][], root: number): number[] {
  const count = successors.length;
  const reachable = (removed: number): Uint8Array => {
    const seen = new Uint8Array(count);
    if (removed === root) return seen;
    const stack = [root];
    seen[root] = 1;
    while (stack.length > 0) {
      for (const next of successors[stack.pop() as number] as number[]) {
        if (next !== removed && seen[next] === 0) {
          seen[next] = 1;
          stack.push(next);
        }
      }
    }
    return seen;
  };
  const all = reachable(-1);
  const strict: number[][] = Array.from({ length: count }, () => []);
  for (let d = 0; d < count; d++) {
    const without = reachable(d);
    for (let v = 0; v < count; v++) if (v !== d && all[v] === 1 && without[v] === 0) (strict[v] as number[]).push(d);
  }
  // The immediate dominator is the strict dominator that all the others dominate: the deepest one.
  return strict.map((doms, v) => {
    if (all[v] === 0) return -1;
    if (v === root) return root;
    return doms.reduce((best, d) => ((strict[d] as number[]).length > (strict[best] as number[]).length ? d : best));
  });
}

describe('immediateDominators', () => {
  // Lengauer & Tarjan, "A Fast Algorithm for Finding Dominators in a Flowgraph" (1979), Fig. 1.
  it('matches the Lengauer–Tarjan example', () => {
    const names = 'RABCDEFGHIJKL';
    const graph = lettered(names, {
      R: 'ABC', A: 'D', B: 'ADE', C: 'FG', D: 'L', E: 'H', F: 'I', G: 'IJ', H: 'EK', I: 'K', J: 'I', K: 'IR', L: 'H',
    });
    assert.equal(
      idomTable(names, immediateDominators(graph, 0)),
      'R:R A:R B:R C:R D:R E:R F:C G:C H:R I:R J:G K:R L:D',
    );
  });

  // Aho, Lam, Sethi & Ullman, "Compilers" (2nd ed.), Fig. 9.38 and its dominator tree, Fig. 9.39.
  it('matches the dragon book example', () => {
    const edges: Record<number, number[]> = {
      1: [2, 3], 2: [3], 3: [4], 4: [3, 5, 6], 5: [7], 6: [7], 7: [4, 8], 8: [3, 9, 10], 9: [1], 10: [7],
    };
    const graph = Array.from({ length: 11 }, (_, n) => edges[n] ?? []); // node 0 unused
    assert.deepEqual([...immediateDominators(graph, 1)], [-1, 1, 1, 1, 3, 4, 4, 4, 7, 8, 8]);
  });

  // Cooper, Harvey & Kennedy, "A Simple, Fast Dominance Algorithm", Figs. 2 and 4: irreducible
  // graphs that need more than one pass; nodes named by their postorder numbers.
  it('matches the irreducible examples of Cooper, Harvey and Kennedy', () => {
    const fig2 = lettered('54321', { 5: '43', 4: '1', 3: '2', 2: '1', 1: '2' });
    assert.equal(idomTable('54321', immediateDominators(fig2, 0)), '5:5 4:5 3:5 2:5 1:5');
    const fig4 = lettered('654321', { 6: '54', 5: '1', 4: '23', 3: '2', 2: '13', 1: '2' });
    assert.equal(idomTable('654321', immediateDominators(fig4, 0)), '6:6 5:6 4:6 3:6 2:6 1:6');
  });

  it('dominates a diamond by its top and a chain link by link', () => {
    assert.deepEqual([...immediateDominators([[1, 2], [3], [3], []], 0)], [0, 0, 0, 0]);
    assert.deepEqual([...immediateDominators([[1], [2], [3], []], 0)], [0, 0, 1, 2]);
  });

  it('gives -1 to unreachable nodes and ignores their edges', () => {
    // 0 -> 1 -> 3, 2 -> 3 (2 unreachable): 3 is still dominated by 1.
    assert.deepEqual([...immediateDominators([[1], [3], [3], [], [0]], 0)], [0, 0, -1, 1, -1]);
  });

  it('ignores self-edges and duplicate edges', () => {
    assert.deepEqual([...immediateDominators([[0, 1, 1, 2], [1, 3], [2, 3, 3], [3]], 0)], [0, 0, 0, 0]);
  });

  it('handles a root other than node 0 and a long chain without deep recursion', () => {
    const count = 100_000;
    const chain = Array.from({ length: count }, (_, n) => (n > 0 ? [n - 1] : []));
    const idom = immediateDominators(chain, count - 1);
    assert.equal(idom[count - 1], count - 1);
    assert.equal(idom[0], 1);
    assert.equal(idom[count - 2], count - 1);
  });

  it('refuses a root or an edge target that is not a node', () => {
    assert.throws(() => immediateDominators([[]], 1), RangeError);
    assert.throws(() => immediateDominators([[]], -1), RangeError);
    assert.throws(() => immediateDominators([[2], []], 0), RangeError);
  });

  it('agrees with the definition on random graphs', () => {
    const random = prng(20240611);
    for (let round = 0; round < 300; round++) {
      const count = 1 + Math.floor(random() * 25);
      const density = random() * 3;
      const graph = Array.from({ length: count }, () => {
        const edges: number[] = [];
        const degree = Math.floor(random() * density * 2);
        for (let e = 0; e < degree; e++) edges.push(Math.floor(random() * count));
        return edges;
      });
      const root = Math.floor(random() * count);
      assert.deepEqual([...immediateDominators(graph, root)], bruteForceIdoms(graph, root), `round ${round}`);
    }
  });
});
