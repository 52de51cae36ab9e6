// Nix settings for a single-user Nix run as root on a host without the binary cache, as on the
// quick start's machine (scripts/start.ts) and in tests (test/helpers/nix.ts). Production hosts
// configure Nix themselves (nix.conf) and keep their substituters; the worker never forces these,
// which is why this lives in scripts/ and not in the worker's source.
//
// - `build-users-group =`: single-user mode, no nixbld users needed.
// - `sandbox = false`: Debian's nix-bin has no sandbox set up; the bundled set relies on that.
// - `substituters =`: without it every first build spends seconds retrying an unreachable cache.
export const OFFLINE_NIX_CONFIG = [
  'build-users-group =',
  'sandbox = false',
  'substituters =',
].join('\n');

/** `env` with the offline settings appended to any NIX_CONFIG it already has. */
export function withOfflineNixConfig(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const existing = env.NIX_CONFIG ? `${env.NIX_CONFIG}\n` : '';
  return { ...env, NIX_CONFIG: existing + OFFLINE_NIX_CONFIG };
}
