// Phases 1–3 of a build (docs/design.md §1): resolve the names, build the outputs, read the closure.
//
// Unknown names stop the build before anything is realised: a typo must cost one evaluation,
// not a build, and the user gets the full list of names that were not found.

import { BuildFailureError, assertAttributePath, type ClosureGraph } from '@nixyard/core';
import type { BuildInput, Nix, ResolvedPackage } from './nix/nix.js';

export interface BuiltClosure {
  packages: ResolvedPackage[];
  /** Store paths of every selected output, sorted. */
  outputs: string[];
  graph: ClosureGraph;
  /** Milliseconds spent in each phase. */
  timings: { resolve: number; build: number; graph: number };
}

export async function buildClosure(nix: Nix, input: BuildInput): Promise<BuiltClosure> {
  // Job data is validated where it enters the worker; this repeats the name grammar check
  // right before Nix sees the names, because it costs nothing and Nix is where harm would be done.
  input.packages.forEach((name) => assertAttributePath(name));

  let t = performance.now();
  const resolved = await nix.resolve(input);
  const resolveMs = performance.now() - t;
  if (resolved.kind === 'missing') {
    if (resolved.unknown.length > 0) {
      throw new BuildFailureError({
        code: 'UNKNOWN_PACKAGES',
        message: `unknown packages: ${resolved.unknown.join(', ')}`,
        packages: resolved.unknown,
      });
    }
    throw new BuildFailureError({
      code: 'BUILD_FAILED',
      message: `packages that exist but cannot be evaluated (broken, unfree or insecure?): ${resolved.unavailable.join(', ')}`,
      logTail: '',
    });
  }

  t = performance.now();
  const outputs = await nix.build(input);
  const buildMs = performance.now() - t;

  t = performance.now();
  const graph = await nix.closureGraph(outputs);
  const graphMs = performance.now() - t;

  return {
    packages: resolved.packages,
    outputs,
    graph,
    timings: { resolve: resolveMs, build: buildMs, graph: graphMs },
  };
}
