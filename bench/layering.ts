// npm run bench:layering — how good the layers are at nixpkgs scale (issue 16): a client with a
// persistent layer cache pulls a seeded sequence of several hundred images (bench/layering/workload.ts)
// built from a Debian-derived closure graph of 63k store paths (bench/layering/dataset.ts), and the
// bench prints, for the seed's strategy, Nixery's, Nixyard's before and after LAYERING_VERSION 4 and
// the lower bound, side by side: bytes downloaded, their ratio to the lower bound, bytes the
// registry stores, layers per image and planning time; then whether the goals hold, and
// the table of every idea tried (docs/layering.md, "Stable layering"). Offline, one core, seconds.
//
//   npm run bench:layering
//   npm run bench:layering -- --pulls 300 --seed 7      another workload
//   npm run bench:layering -- --no-ideas                 the main table and the goals only
import { parseArgs } from 'node:util';
import { LAYERING_VERSION, type ClosureGraph } from '@nixyard/core';
import { closureGraph, graphPopularity, loadStore, type Store } from './layering/dataset.js';
import { Images, planningMs, simulate, type PopularityMode, type SimulationResult } from './layering/simulate.js';
import { NIXERY_MAX_LAYERS, lowerBoundStrategy, nixeryStrategy, seedStrategy, stableStrategy, type Strategy } from './layering/strategies.js';
import { DEFAULT_WORKLOAD, WORKLOAD_PACKAGES, pullSequence } from './layering/workload.js';

/** Packages whose union is the planning-time closure of 2,000+ paths (the first ones that reach it). */
const LARGE_CLOSURE_PACKAGES = ['kde-full', 'gnome', 'sagemath', 'texlive-full', 'freecad', 'octave'];
const LARGE_CLOSURE_PATHS = 2000;
const PLANNING_GOAL_MS = 50;

interface Row {
  label: string;
  popularity: string;
  strategy: Strategy;
  mode: PopularityMode;
  result?: SimulationResult;
  planLargest?: number;
  plan2000?: number;
}

const POPULARITY_LABEL: Record<PopularityMode, string> = {
  graph: 'graph-wide',
  'learned-after': 'learned (after)',
  'learned-before': 'learned',
  images: 'images built',
};

function main(): void {
  const { values } = parseArgs({
    options: {
      pulls: { type: 'string', default: String(DEFAULT_WORKLOAD.pulls) },
      seed: { type: 'string', default: String(DEFAULT_WORKLOAD.seed) },
      'no-ideas': { type: 'boolean', default: false },
    },
  });
  const workload = { ...DEFAULT_WORKLOAD, pulls: Number(values.pulls), seed: Number(values.seed) };
  const store = loadStore();
  const popularity = graphPopularity(store);
  const pulls = pullSequence(workload);
  const images = new Images(store);
  const largest = pulls.map((pull) => images.graph(pull)).reduce((a, b) => (b.paths.length > a.paths.length ? b : a));
  const large = largeClosure(store);

  console.log(`layering benchmark (LAYERING_VERSION ${LAYERING_VERSION})`);
  console.log(`dataset: ${store.source.origin} ${store.source.release} ${store.source.component} ${store.source.architectures.join('+')}, index dated ${store.source.date}: ${store.paths.length} store paths`);
  console.log(
    `workload: ${pulls.length} pulls (seed ${workload.seed}, Zipf s=${workload.exponent} over ${WORKLOAD_PACKAGES.length} packages, ${workload.minPackages}-${workload.maxPackages} per image), ` +
      `${new Set(pulls.map((p) => p.key)).size} distinct images, largest closure ${largest.paths.length} paths; planning time also at a ${large.paths.length}-path closure`,
  );
  console.log('bytes: NAR sizes (Installed-Size), uncompressed; layers per image include the symlink layer\n');

  const rows: Row[] = [
    { label: 'seed (mkManyPureLayers, 24+1)', popularity: 'per closure', strategy: seedStrategy, mode: 'graph' },
    { label: 'Nixery (popularity + dominators)', popularity: POPULARITY_LABEL.graph, strategy: nixeryStrategy(), mode: 'graph' },
    { label: 'Nixyard v3 (= Nixery\'s plan)', popularity: POPULARITY_LABEL['learned-after'], strategy: nixeryStrategy('Nixyard v3'), mode: 'learned-after' },
    { label: 'Nixyard v4 (stable)', popularity: POPULARITY_LABEL.graph, strategy: stableStrategy(), mode: 'graph' },
    { label: 'Nixyard v4 (stable)', popularity: POPULARITY_LABEL['learned-after'], strategy: stableStrategy(), mode: 'learned-after' },
    { label: 'lower bound (a layer per path)', popularity: '-', strategy: lowerBoundStrategy, mode: 'graph' },
  ];
  for (const row of rows) {
    row.result = simulate(images, pulls, row.strategy, row.mode, popularity);
    row.planLargest = planningMs(row.strategy, largest, popularity);
    row.plan2000 = planningMs(row.strategy, large, popularity, 7);
  }
  const bound = (rows[rows.length - 1] as Row).result as SimulationResult;
  printTable(rows, bound, largest.paths.length, large.paths.length);

  // Goals (issue 16).
  const seed = rows[0] as Row;
  const nixery = rows[1] as Row;
  const v4 = [rows[3] as Row, rows[4] as Row];
  const nixeryRatio = ratio(nixery, bound);
  const target = 1 + (nixeryRatio - 1) / 2;
  const goals: [string, boolean][] = [];
  for (const row of v4) {
    const r = row.result as SimulationResult;
    goals.push([
      `v4 (${row.popularity}) closes half of Nixery's gap: ${ratio(row, bound).toFixed(3)}x <= ${target.toFixed(3)}x, ${r.layersMax} <= ${NIXERY_MAX_LAYERS} layers`,
      ratio(row, bound) <= target && r.layersMax <= NIXERY_MAX_LAYERS,
    ]);
    goals.push([`v4 (${row.popularity}) stores no more than Nixery: ${gb(r.stored)} <= ${gb((nixery.result as SimulationResult).stored)} GB`, r.stored <= (nixery.result as SimulationResult).stored]);
    const s = seed.result as SimulationResult;
    goals.push([
      `v4 (${row.popularity}) downloads and stores no more than the seed: ${gb(r.downloaded)} <= ${gb(s.downloaded)}, ${gb(r.stored)} <= ${gb(s.stored)} GB`,
      r.downloaded <= s.downloaded && r.stored <= s.stored,
    ]);
  }
  goals.push([`v4 plans a ${large.paths.length}-path closure in ${(v4[0] as Row).plan2000!.toFixed(1)} ms <= ${PLANNING_GOAL_MS} ms (one core)`, (v4[0] as Row).plan2000! <= PLANNING_GOAL_MS]);
  console.log('\ngoals');
  for (const [text, ok] of goals) console.log(`  ${ok ? 'HOLDS ' : 'MISSED'}  ${text}`);

  if (!values['no-ideas']) printIdeas(images, pulls, popularity, bound);
  if (goals.some(([, ok]) => !ok)) process.exitCode = 1;
}

/** The union of LARGE_CLOSURE_PACKAGES' closures, from the first, until it has 2,000+ paths. */
function largeClosure(store: Store): ClosureGraph {
  const roots: number[] = [];
  let graph: ClosureGraph = { roots: [], paths: [] };
  for (const name of LARGE_CLOSURE_PACKAGES) {
    const id = store.idOf.get(name);
    if (id === undefined) throw new Error(`${name} is not in the dataset`);
    roots.push(id);
    graph = closureGraph(store, roots);
    if (graph.paths.length >= LARGE_CLOSURE_PATHS) break;
  }
  return graph;
}

function printTable(rows: Row[], bound: SimulationResult, largestPaths: number, largePaths: number): void {
  const header = ['strategy', 'popularity', 'downloaded GB', 'x bound', 'stored GB', 'layers max', 'median', `plan ms (${largestPaths} paths)`, `plan ms (${largePaths} paths)`];
  const lines = rows.map((row) => {
    const r = row.result as SimulationResult;
    return [row.label, row.popularity, gb(r.downloaded), `${ratio(row, bound).toFixed(3)}`, gb(r.stored), String(r.layersMax), String(r.layersMedian), row.planLargest!.toFixed(2), row.plan2000!.toFixed(1)];
  });
  printAligned(header, lines);
}

/** Every idea tried, on both popularity sources the worker can have (docs/layering.md). */
function printIdeas(images: Images, pulls: ReturnType<typeof pullSequence>, popularity: Map<string, number>, bound: SimulationResult): void {
  const ideas: [string, Strategy, PopularityMode[]][] = [
    ['Nixery\'s plan, popularity learned before planning', nixeryStrategy(), ['learned-before']],
    ['Nixery\'s plan, popularity = images built with the path', nixeryStrategy(), ['images']],
    ['dominators, threshold 100, pile by bytes', stableStrategy('idea', { grouping: 'dominators', headThreshold: 100 }), ['graph', 'learned-after', 'learned-before']],
    ['dominators, threshold 2, pile by rating (Nixery\'s merge)', stableStrategy('idea', { grouping: 'dominators', headThreshold: 2, pileBy: 'rating' }), ['graph', 'learned-before']],
    ['dominators, threshold 2, pile by bytes', stableStrategy('idea', { grouping: 'dominators', headThreshold: 2 }), ['graph', 'learned-after', 'learned-before', 'images']],
    ['dominators, threshold 3, pile by bytes', stableStrategy('idea', { grouping: 'dominators', headThreshold: 3 }), ['graph', 'learned-before']],
    ['dominators, threshold 2, coalescing, pile by bytes', stableStrategy('idea', { grouping: 'dominators', headThreshold: 2, coalesce: true }), ['graph', 'learned-before']],
    ['a group per path, pile by bytes x reference count', stableStrategy('idea', { pileBy: 'weighted' }), ['graph', 'learned-before']],
    ['a group per path, pile by bytes x images built', stableStrategy('idea', { pileBy: 'weighted' }), ['images']],
    ['a group per path, pile by rating', stableStrategy('idea', { pileBy: 'rating' }), ['graph', 'learned-after']],
    ['a group per path, pile by bytes (v4)', stableStrategy(), ['graph', 'learned-after', 'learned-before', 'images']],
  ];
  console.log('\nideas tried (downloaded, x bound; every row within 95 layers)');
  const lines: string[][] = [];
  for (const [label, strategy, modes] of ideas) {
    for (const mode of modes) {
      const r = simulate(images, pulls, strategy, mode, popularity);
      lines.push([label, POPULARITY_LABEL[mode], gb(r.downloaded), (r.downloaded / bound.downloaded).toFixed(3), String(r.layersMedian)]);
    }
  }
  printAligned(['idea', 'popularity', 'downloaded GB', 'x bound', 'median layers'], lines);
}

function printAligned(header: string[], lines: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const format = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  console.log(format(header));
  for (const line of lines) console.log(format(line));
}

function ratio(row: Row, bound: SimulationResult): number {
  return (row.result as SimulationResult).downloaded / bound.downloaded;
}

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(2);
}

main();
