// The layering strategies the benchmark compares, each as a function from an image's closure graph
// (and popularity) to its store-path layers. The symlink (customisation) layer is the same for
// every strategy (keyed by the package set) and the simulator adds it to each image itself.
import {
  FORCED_POPULAR_PNAMES,
  planLayers,
  planStableLayers,
  STABLE_LAYER_TUNING,
  type StableLayerTuning,
  type ClosureGraph,
  type PopularitySource,
} from '@nixyard/core';

/** What a strategy may look at besides the graph. */
export interface PlanInputs {
  /** Popularity by store-path name: graph-wide, or learned by the simulated farm. */
  popularity: PopularitySource;
}

export interface Strategy {
  name: string;
  /** Most layers per image, the symlink layer included; undefined: no limit. */
  maxLayers: number | undefined;
  plan(graph: ClosureGraph, inputs: PlanInputs): string[][];
}

/** The seed's and dockerTools' image size: 24 layers of store paths (23 + the rest), + 1. */
export const SEED_MAX_LAYERS = 25;
/** Nixery's and Nixyard's default: 95 layers, the symlink layer included. */
export const NIXERY_MAX_LAYERS = 95;

/**
 * The seed (`build-registry-image.nix`): dockerTools' `mkManyPureLayers` over the closure sorted by
 * `referencesByPopularity`, i.e. by how many paths of this closure reach the path (most first,
 * ties by store path): each of the 23 most popular paths in a layer of its own, everything else in
 * one last layer, then the customisation layer.
 */
export const seedStrategy: Strategy = {
  name: 'seed (mkManyPureLayers)',
  maxLayers: SEED_MAX_LAYERS,
  plan(graph) {
    const paths = graph.paths.map((p) => p.path);
    const index = new Map(paths.map((p, i) => [p, i]));
    const referrers: number[][] = paths.map(() => []);
    graph.paths.forEach((info, i) => {
      for (const ref of info.references) {
        const j = index.get(ref);
        if (j !== undefined && j !== i) (referrers[j] as number[]).push(i);
      }
    });
    // Transitive referrers of each path within the closure.
    const reachCount = paths.map((_, start) => {
      const seen = new Uint8Array(paths.length);
      seen[start] = 1;
      const stack = [start];
      let n = 0;
      while (stack.length > 0) {
        for (const r of referrers[stack.pop() as number] as number[]) {
          if (seen[r] === 0) {
            seen[r] = 1;
            n++;
            stack.push(r);
          }
        }
      }
      return n;
    });
    const order = paths.map((_, i) => i).sort((a, b) => (reachCount[b] as number) - (reachCount[a] as number) || a - b);
    const own = SEED_MAX_LAYERS - 2;
    const layers = order.slice(0, own).map((i) => [paths[i] as string]);
    const rest = order.slice(own).map((i) => paths[i] as string);
    if (rest.length > 0) layers.push(rest.sort());
    return layers;
  },
};

/**
 * Nixery's popularity + dominator tree, budget 94 + 1: `planLayers`, which is also Nixyard's
 * layering up to LAYERING_VERSION 3 (the two differ in where popularity comes from).
 */
export function nixeryStrategy(name = 'Nixery (popularity + dominators)'): Strategy {
  return {
    name,
    maxLayers: NIXERY_MAX_LAYERS,
    plan(graph, { popularity }) {
      return planLayers(graph, { budget: NIXERY_MAX_LAYERS - 1, popularity, forcedPopular: FORCED_POPULAR_PNAMES }).map((l) => l.storePaths);
    },
  };
}

/** Nixyard's improved layering (LAYERING_VERSION 4): `planStableLayers`, with other knobs for the ideas table. */
export function stableStrategy(name = 'Nixyard v4 (stable)', tuning: Partial<StableLayerTuning> = {}): Strategy {
  const knobs = { ...STABLE_LAYER_TUNING, ...tuning };
  return {
    name,
    maxLayers: NIXERY_MAX_LAYERS,
    plan(graph, { popularity }) {
      return planStableLayers(graph, { budget: NIXERY_MAX_LAYERS - 1, popularity, forcedPopular: FORCED_POPULAR_PNAMES }, knobs).map((l) => l.storePaths);
    },
  };
}

/** The lower bound: one layer per store path, no budget. Every client downloads each path once. */
export const lowerBoundStrategy: Strategy = {
  name: 'lower bound (a layer per path)',
  maxLayers: undefined,
  plan(graph) {
    return graph.paths.map((p) => [p.path]);
  },
};
