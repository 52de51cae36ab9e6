// The bundled offline package set (examples/pkgs), prepared once per test process, and builds of
// its attributes with the offline Nix environment (./nix.ts).

import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nixBuild } from './nix.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BUNDLED_SET = join(REPO_ROOT, 'examples/pkgs');

let prepared = false;

/** Runs examples/pkgs/prepare.sh (idempotent, fast when already done). */
export function prepareBundledSet(): void {
  if (prepared) return;
  execFileSync('bash', [join(BUNDLED_SET, 'prepare.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  prepared = true;
}

/** nix-build of one attribute of the bundled set; returns its out path. */
export function buildBundled(attribute: string): string {
  return nixBuild([BUNDLED_SET, '-A', attribute]);
}
