// The layering simulator: a registry that builds each distinct image of a pull sequence once (as
// the farm does: an image key is built once, then served from its manifest) and a client with a
// persistent layer cache that pulls the whole sequence. It runs the same planning code the worker
// runs, on closure graphs from the dataset, with no Nix and no packing: a layer's bytes are the sum
// of its paths' NAR sizes (compression would scale every strategy alike), and the symlink layer,
// the same for every strategy, counts as one layer per image and no bytes.
import { layerKey, type ClosureGraph, type PopularitySource } from '@nixyard/core';
import { closureGraph, type Store } from './dataset.js';
import type { Strategy } from './strategies.js';
import { expandPackages, type Pull } from './workload.js';

/**
 * Where popularity comes from:
 * - `graph`: the whole dataset's reference counts, as Nixery's published data;
 * - `learned-after`: what the farm learned (reference counts, apps/worker/src/popularity.ts) from
 *   the images it built before this one, as the worker does: it learns after planning;
 * - `learned-before`: the same, learned from this image too before planning it;
 * - `images`: learned from builds rather than references: in how many built images (this one
 *   included) a path of that name was.
 */
export type PopularityMode = 'graph' | 'learned-after' | 'learned-before' | 'images';

export interface SimulationResult {
  /** Bytes the client downloads over the sequence (each layer once). */
  downloaded: number;
  /** Bytes of the distinct layers the registry stores. */
  stored: number;
  /** Layers per built image, the symlink layer included. */
  layersMax: number;
  layersMedian: number;
  /** Distinct images built. */
  images: number;
}

/** The closure graphs of a pull sequence's images, built once and shared by every run. */
export class Images {
  private readonly graphs = new Map<string, ClosureGraph>();

  constructor(readonly store: Store) {}

  graph(pull: Pull): ClosureGraph {
    let graph = this.graphs.get(pull.key);
    if (graph === undefined) {
      const roots = expandPackages(pull.packages).map((name) => {
        const id = this.store.idOf.get(name);
        if (id === undefined) throw new Error(`workload package ${name} is not in the dataset`);
        return id;
      });
      graph = closureGraph(this.store, roots);
      this.graphs.set(pull.key, graph);
    }
    return graph;
  }
}

/**
 * What a farm without NIX_POPULARITY_URL learns (apps/worker/src/popularity.ts): after each build,
 * every store path seen for the first time adds one to the count of each name it refers to.
 */
export class LearnedCounts {
  private readonly seen = new Set<string>();
  readonly counts = new Map<string, number>();

  learn(graph: ClosureGraph): void {
    for (const info of graph.paths) {
      if (this.seen.has(info.path)) continue;
      this.seen.add(info.path);
      const names = new Set<string>();
      for (const ref of info.references) if (ref !== info.path) names.add(nameOf(ref));
      for (const name of names) increment(this.counts, name);
    }
  }
}

/** The store-path name of a synthesised path (/nix/store/<32 chars>-<name>). */
function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 34);
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

interface Built {
  layers: { key: string; bytes: number }[];
}

export function simulate(images: Images, pulls: readonly Pull[], strategy: Strategy, mode: PopularityMode, graphPopularity: PopularitySource): SimulationResult {
  const learned = new LearnedCounts();
  const imageCounts = new Map<string, number>();
  const built = new Map<string, Built>();
  const registry = new Map<string, number>();
  const client = new Set<string>();
  const layerCounts: number[] = [];
  let downloaded = 0;
  for (const pull of pulls) {
    let image = built.get(pull.key);
    if (image === undefined) {
      const graph = images.graph(pull);
      const sizes = new Map(graph.paths.map((p) => [p.path, p.narSize]));
      if (mode === 'learned-before') learned.learn(graph);
      if (mode === 'images') for (const info of graph.paths) increment(imageCounts, nameOf(info.path));
      const popularity = mode === 'graph' ? graphPopularity : mode === 'images' ? new Map(imageCounts) : new Map(learned.counts);
      const planned = strategy.plan(graph, { popularity });
      checkPlan(strategy, graph, planned);
      image = {
        layers: planned.map((paths) => ({ key: layerKey(paths), bytes: paths.reduce((n, p) => n + (sizes.get(p) as number), 0) })),
      };
      built.set(pull.key, image);
      for (const layer of image.layers) registry.set(layer.key, layer.bytes);
      layerCounts.push(image.layers.length + 1);
      if (mode === 'learned-after') learned.learn(graph);
    }
    for (const layer of image.layers) {
      if (client.has(layer.key)) continue;
      client.add(layer.key);
      downloaded += layer.bytes;
    }
  }
  let stored = 0;
  for (const bytes of registry.values()) stored += bytes;
  layerCounts.sort((a, b) => a - b);
  return {
    downloaded,
    stored,
    layersMax: layerCounts[layerCounts.length - 1] ?? 0,
    layersMedian: layerCounts[Math.floor((layerCounts.length - 1) / 2)] ?? 0,
    images: built.size,
  };
}

/** Every path in exactly one layer, within the strategy's budget: a broken plan stops the bench. */
function checkPlan(strategy: Strategy, graph: ClosureGraph, planned: readonly string[][]): void {
  const seen = new Set<string>();
  for (const layer of planned) {
    if (layer.length === 0) throw new Error(`${strategy.name}: an empty layer`);
    for (const path of layer) {
      if (seen.has(path)) throw new Error(`${strategy.name}: ${path} in two layers`);
      seen.add(path);
    }
  }
  if (seen.size !== graph.paths.length) throw new Error(`${strategy.name}: ${graph.paths.length - seen.size} paths in no layer`);
  if (strategy.maxLayers !== undefined && planned.length + 1 > strategy.maxLayers) {
    throw new Error(`${strategy.name}: ${planned.length + 1} layers, over ${strategy.maxLayers}`);
  }
}

/** Median wall time of planning `graph`, in ms, over `runs` runs after a warm-up. */
export function planningMs(strategy: Strategy, graph: ClosureGraph, popularity: PopularitySource, runs = 15): number {
  strategy.plan(graph, { popularity });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    strategy.plan(graph, { popularity });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}
