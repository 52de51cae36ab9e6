// The bundled offline package set, prepared once per test process, and a Nix environment that
// builds from it without a binary cache.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withOfflineNixConfig } from '../../apps/worker/src/nix/offline-config.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BUNDLED_SET = join(REPO_ROOT, 'examples/pkgs');
export const NIX_ENV = withOfflineNixConfig(process.env);

let prepared = false;

/** Runs examples/pkgs/prepare.sh (idempotent, fast when already done). */
export function prepareBundledSet(): void {
  if (prepared) return;
  execFileSync('bash', [join(BUNDLED_SET, 'prepare.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  prepared = true;
}

/** Every path of the runtime closure of `paths`, per `nix-store -qR`. */
export function nixStoreClosure(paths: readonly string[]): string[] {
  const out = execFileSync('nix-store', ['-qR', ...paths], { env: NIX_ENV, encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

/** nix-build of one attribute of the bundled set; returns its out path. */
export function buildBundled(attribute: string): string {
  const out = execFileSync('nix-build', ['--no-out-link', BUNDLED_SET, '-A', attribute], {
    env: NIX_ENV,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return out.trim().split('\n').pop()!;
}

/** A temp dir removed when the test's `after` hook calls the returned cleanup. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `nixyard-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}
