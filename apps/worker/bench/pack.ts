// npm run bench:pack — how fast the worker packs an image, against the GNU pipeline.
//
// Cold: the layer, pack and publish phases of `large/shell/curl` (the bundled set's 64 MiB
// incompressible package plus a shell and curl) into an empty storage, the same code the worker
// runs. Peer: GNU tar of the same store paths, teed into sha256sum (the diff_id) and piped
// through gzip at the same level into sha256sum (the digest), so both sides do the same work.
// Warm: `shell/curl`, a different image whose store-path layers the cold run already packed.
// Nix builds happen before the clock starts. Each figure is the median of several runs.

import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CONFIG_DEFAULTS, FilesystemStorage, buildJobFor, parseImageName, type BuildJobData } from '@nixyard/core';
import { assembleImage, type AssembleDeps, type AssembleInput } from '../src/assemble-image.js';
import { buildClosure } from '../src/build-closure.js';
import { LayerCache } from '../src/layer-cache.js';
import { Nix } from '../src/nix/nix.js';
import type { Popularity } from '../src/popularity.js';
import { BUNDLED_SET, prepareBundledSet } from '../../../test/helpers/bundled-set.js';
import { NIX_ENV } from '../../../test/helpers/nix.js';
import { tempDir } from '../../../test/helpers/temp-dir.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const GZIP_LEVEL = Number(process.env.NIXYARD_GZIP_LEVEL ?? CONFIG_DEFAULTS.gzipLevel);
const noPopularity: Popularity = { counts: async () => new Map(), learn: async () => {} };

async function prepare(name: string): Promise<{ job: BuildJobData; input: AssembleInput; bytes: number }> {
  const spec = parseImageName(name);
  const source = { kind: 'path' as const, path: BUNDLED_SET };
  const closure = await buildClosure(new Nix({ timeoutSeconds: 600, env: NIX_ENV }), { source, revision: 'bench', system: spec.system, packages: spec.packages });
  return {
    job: buildJobFor({ spec, source, revision: 'bench' }),
    input: { graph: closure.graph, packageOutputs: closure.packages.flatMap((p) => Object.values(p.outputs)) },
    bytes: closure.graph.paths.reduce((sum, p) => sum + p.narSize, 0),
  };
}

function deps(storagePath: string): AssembleDeps {
  const storage = new FilesystemStorage(storagePath);
  return { storage, layerCache: new LayerCache(storage), popularity: noPopularity, maxLayers: 95, gzipLevel: GZIP_LEVEL };
}

function gnuPipeline(paths: string[]): number {
  const started = performance.now();
  execFileSync(
    'bash',
    ['-c', `set -o pipefail; tar -cf - -C / "$@" | tee >(sha256sum >/dev/null) | gzip -${GZIP_LEVEL} | sha256sum >/dev/null`, 'gnu', ...paths.map((p) => p.slice(1))],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return performance.now() - started;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (bytes: number) => bytes / (1024 * 1024);

async function main(): Promise<void> {
  prepareBundledSet();
  const cold = await prepare('large/shell/curl');
  const warm = await prepare('shell/curl');
  const coldPaths = cold.input.graph.paths.map((p) => p.path);
  const warmPaths = warm.input.graph.paths.map((p) => p.path);

  const ours: number[] = [];
  const gnu: number[] = [];
  const oursWarm: number[] = [];
  let compressed = 0;
  const gnuWarm: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const dir = tempDir('bench-pack');
    try {
      const d = deps(join(dir.path, 'storage'));
      let t = performance.now();
      const built = await assembleImage(d, cold.job, cold.input);
      ours.push(performance.now() - t);
      compressed = built.layers.reduce((sum, l) => sum + l.size, 0);
      t = performance.now();
      const rebuilt = await assembleImage(d, warm.job, warm.input);
      oursWarm.push(performance.now() - t);
      const repacked = rebuilt.layers.filter((l) => l.packed).length;
      if (repacked !== 1) throw new Error(`the warm image packed ${repacked} layers; only its symlink layer should be new`);
    } finally {
      dir.cleanup();
    }
    gnu.push(gnuPipeline(coldPaths));
    gnuWarm.push(gnuPipeline(warmPaths));
  }

  const [o, g, ow, gw] = [median(ours), median(gnu), median(oursWarm), median(gnuWarm)];
  const line = (label: string, ms: number, bytes: number) =>
    `  ${label.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms  ${(mib(bytes) / (ms / 1000)).toFixed(1).padStart(7)} MiB/s`;
  console.log(`pack benchmark: gzip level ${GZIP_LEVEL}, ${availableParallelism()} cores, median of ${RUNS} runs`);
  console.log(`cold: large/shell/curl, ${coldPaths.length} store paths, ${mib(cold.bytes).toFixed(1)} MiB`);
  console.log(line('nixyard (layer + pack + publish)', o, cold.bytes) + `  -> ${mib(compressed).toFixed(1)} MiB of layers`);
  console.log(line('GNU tar | tee sha256sum | gzip | sha256sum', g, cold.bytes));
  console.log(`  throughput ratio nixyard / GNU: ${(g / o).toFixed(2)} (>= 1.0 means at least as fast)`);
  console.log(`warm: shell/curl after the cold image, ${warmPaths.length} store paths, ${mib(warm.bytes).toFixed(1)} MiB, every store-path layer cached`);
  console.log(line('nixyard warm rebuild', ow, warm.bytes));
  console.log(line('GNU pipeline (has no cache)', gw, warm.bytes));
  console.log(`  warm / cold: ${((ow / o) * 100).toFixed(1)}% (target < 5%); GNU / nixyard warm: ${(gw / ow).toFixed(1)}x`);
}

await main();
