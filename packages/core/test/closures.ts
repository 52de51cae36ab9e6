// Closure graphs for the layering tests: hand-drawn ones by name, and seeded random ones shaped as
// Nix makes them (mostly a DAG), with some cycles and self-references for robustness.

import type { ClosureGraph, PlannedLayer } from '../src/index.js';
import { shuffled } from '../../../test/helpers/random.js';

const HASH = '0'.repeat(32); // one hash for all, so paths sort by name
export const p = (name: string): string => `/nix/store/${HASH}-${name}`;
export const MB = 1000 * 1000;

/** A closure from `name: [narSize, references]`, roots by name. */
export function closure(spec: Record<string, [number, string[]?]>, roots: string[]): ClosureGraph {
  const paths = Object.entries(spec)
    .map(([name, [narSize, refs = []]]) => ({ path: p(name), narSize, references: refs.map(p).sort() }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  return { roots: roots.map(p).sort(), paths };
}

export const layer = (names: string[], narSize: number, rating: number): PlannedLayer => ({ storePaths: names.map(p).sort(), narSize, rating });
export const pop = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries));

/**
 * A random closure of `count` paths: paths refer mostly to earlier ones (a DAG, as from Nix),
 * sometimes to later ones (cycles, which Nix never makes), sometimes to themselves. A `share` of
 * the names get a popularity below `below`.
 */
export function randomClosure(
  random: () => number,
  count: number,
  popularity: { share: number; below: number },
): { graph: ClosureGraph; popularity: Map<string, number> } {
  const names = Array.from({ length: count }, (_, i) => `pkg${i}-1.${Math.floor(random() * 3)}`);
  const paths = names.map((name, i) => {
    const references = new Set<string>();
    const degree = Math.floor(random() * 4);
    for (let e = 0; e < degree && i > 0; e++) references.add(p(names[Math.floor(random() * i)] as string));
    if (random() < 0.05) references.add(p(names[Math.floor(random() * count)] as string));
    if (random() < 0.3) references.add(p(name));
    const narSize = random() < 0.05 ? Math.floor(random() * 200 * MB) : Math.floor(random() * 5 * MB);
    return { path: p(name), narSize, references: [...references].sort() };
  });
  const roots = names.filter(() => random() < 0.2).map(p);
  const counts = new Map(names.filter(() => random() < popularity.share).map((name) => [name, Math.floor(random() * popularity.below)] as const));
  return { graph: { roots: roots.sort(), paths: paths.sort((a, b) => (a.path < b.path ? -1 : 1)) }, popularity: counts };
}

/** The same closure in another order: its paths, each path's references, and its roots shuffled. */
export function reordered(graph: ClosureGraph, random: () => number): ClosureGraph {
  return {
    roots: shuffled(graph.roots, random),
    paths: shuffled(graph.paths, random).map((info) => ({ ...info, references: shuffled(info.references, random) })),
  };
}
