// The Nix side of a build: resolve package names, build them, read their closure graph.
//
// Each step is one Nix command whose inputs are plain strings (JSON where structured) handed to
// Nix as `--argstr` values, and whose answer is parsed as JSON and validated. Nothing the user
// typed is ever spliced into Nix code or a shell line.

import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  BuildFailureError,
  type ClosureGraph,
  type PackageSource,
  type StorePathInfo,
  type System,
} from '@nixyard/core';
import type { ChildLedger } from './child-ledger.js';
import { runCommand, type RunOutcome } from './run-command.js';

const RESOLVE_NIX = fileURLToPath(new URL('../../nix/resolve.nix', import.meta.url));

export interface NixOptions {
  /** NIX_TIMEOUT: the bound on each Nix command, in seconds. */
  timeoutSeconds: number;
  /** Environment for the Nix processes (NIX_CONFIG, PATH ...); defaults to this process's. */
  env?: NodeJS.ProcessEnv;
  /** Records the running Nix commands, so that the worker can stop them when it stops. */
  ledger?: ChildLedger;
}

export interface BuildInput {
  source: PackageSource;
  /** The resolved revision: a git commit, a channel name or nixpkgs commit; unused for a path. */
  revision: string;
  system: System;
  /** Attribute paths, already validated by @nixyard/core's name grammar. */
  packages: readonly string[];
}

export interface ResolvedPackage {
  name: string;
  /** Output name → store path, for the outputs that go into an image. */
  outputs: Record<string, string>;
}

export type ResolveResult =
  | { kind: 'resolved'; packages: ResolvedPackage[] }
  /** `unknown`: no such attribute (or not a package); `unavailable`: it exists but does not evaluate. */
  | { kind: 'missing'; unknown: string[]; unavailable: string[] };

const ResolveAnswer = z.object({
  unknown: z.array(z.string()),
  unavailable: z.array(z.string()),
  packages: z.array(z.object({ name: z.string(), outputs: z.record(z.string(), z.string()) })),
});

const PathInfoAnswer = z.array(
  z.object({
    path: z.string(),
    narSize: z.number().int().nonnegative(),
    references: z.array(z.string()),
  }),
);

/** The source as resolve.nix takes it: the configured source pinned to the job's revision. */
export function nixSource(source: PackageSource, revision: string): Record<string, string> {
  switch (source.kind) {
    case 'path':
      return { kind: 'path', path: source.path };
    case 'git':
      return { kind: 'git', url: source.url, rev: revision };
    case 'channel':
      return { kind: 'channel', channel: revision };
  }
}

function resolveArgs(input: BuildInput): string[] {
  return [
    RESOLVE_NIX,
    '--argstr', 'sourceJSON', JSON.stringify(nixSource(input.source, input.revision)),
    '--argstr', 'system', input.system,
    '--argstr', 'packagesJSON', JSON.stringify(input.packages),
  ];
}

export class Nix {
  constructor(private readonly options: NixOptions) {}

  /** Evaluates the names against the package source; builds nothing. */
  async resolve(input: BuildInput): Promise<ResolveResult> {
    const stdout = await this.run('resolve', 'nix-instantiate', ['--eval', '--strict', '--json', ...resolveArgs(input), '-A', 'result']);
    const answer = ResolveAnswer.parse(JSON.parse(stdout));
    if (answer.unknown.length > 0 || answer.unavailable.length > 0) {
      return { kind: 'missing', unknown: answer.unknown, unavailable: answer.unavailable };
    }
    return { kind: 'resolved', packages: answer.packages };
  }

  /** The package set's top-level attribute names (for the API's package index). */
  async attributeNames(source: PackageSource, revision: string, system: System): Promise<string[]> {
    const stdout = await this.run('index', 'nix-instantiate', [
      '--eval', '--strict', '--json', ...resolveArgs({ source, revision, system, packages: [] }), '-A', 'attributeNames',
    ]);
    return z.array(z.string()).parse(JSON.parse(stdout)).sort();
  }

  /** Realises the selected outputs of every package; returns their store paths, sorted. */
  async build(input: BuildInput): Promise<string[]> {
    const stdout = await this.run('build', 'nix-build', ['--no-out-link', ...resolveArgs(input), '-A', 'outputs']);
    return [...new Set(stdout.split('\n').filter((line) => line.startsWith('/')))].sort();
  }

  /** The runtime closure of `roots`: every path with its references and NAR size. */
  async closureGraph(roots: readonly string[]): Promise<ClosureGraph> {
    const stdout = await this.run('graph', 'nix', [
      '--extra-experimental-features', 'nix-command',
      'path-info', '--json', '--recursive', ...roots,
    ]);
    const paths: StorePathInfo[] = PathInfoAnswer.parse(JSON.parse(stdout))
      .map((p) => ({ path: p.path, narSize: p.narSize, references: [...p.references].sort() }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { roots: [...roots].sort(), paths };
  }

  private async run(step: string, command: string, args: string[]): Promise<string> {
    const outcome: RunOutcome = await runCommand(command, args, {
      timeoutSeconds: this.options.timeoutSeconds,
      ...(this.options.env ? { env: this.options.env } : {}),
      ...(this.options.ledger ? { ledger: this.options.ledger } : {}),
    });
    if (outcome.kind === 'timeout') {
      throw new BuildFailureError({
        code: 'TIMEOUT',
        message: `nix ${step} timed out after ${this.options.timeoutSeconds}s`,
        seconds: this.options.timeoutSeconds,
        logTail: outcome.logTail,
      });
    }
    if (outcome.code !== 0) {
      throw new BuildFailureError({
        code: 'BUILD_FAILED',
        message: `nix ${step} failed with exit code ${outcome.code}`,
        logTail: outcome.logTail,
      });
    }
    return outcome.stdout;
  }
}
