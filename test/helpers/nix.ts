// Real Nix for integration and end-to-end tests: the offline environment the quick start uses
// too (scripts/offline-nix.ts: single-user, no sandbox, no substituters), and nix-build of an
// expression, a shell-script derivation or an attribute of a file.

import { execFileSync } from 'node:child_process';
import { withOfflineNixConfig } from '../../scripts/offline-nix.js';

/** The test process's environment with the offline Nix settings added to its NIX_CONFIG. */
export const NIX_ENV = withOfflineNixConfig(process.env);

/** `nix-build --no-out-link <args>` in NIX_ENV; returns the (last) out path. Nix's stderr goes into the error. */
export function nixBuild(args: readonly string[]): string {
  const out = execFileSync('nix-build', ['--no-out-link', ...args], { env: NIX_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.trim().split('\n').pop()!;
}

/** nix-build of a Nix expression; returns its out path. */
export function nixBuildExpression(expr: string): string {
  return nixBuild(['-E', expr]);
}

/**
 * A derivation `name` whose builder is `/bin/sh -c <script>` (with `set -e` and the host's
 * /usr/bin:/bin on PATH; `$out` is the output), built; returns its store path. The same name and
 * script are the same derivation, so a later run reuses the output already in the store.
 */
export function nixBuildScript(name: string, script: string): string {
  const expr = `derivation { name = ${JSON.stringify(name)}; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" ${JSON.stringify(`export PATH=/usr/bin:/bin; set -e; ${script}`)} ]; }`;
  return nixBuildExpression(expr);
}

/** Every path of the runtime closure of `paths`, per `nix-store -qR`. */
export function nixStoreClosure(paths: readonly string[]): string[] {
  const out = execFileSync('nix-store', ['-qR', ...paths], { env: NIX_ENV, encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}
