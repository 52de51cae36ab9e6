// A package set for fault tests: the bundled offline set (examples/pkgs) plus packages whose build
// waits until the test lets it finish. A fault test has to kill a worker while it is building, and
// a build of the bundled set is over in a second; these builds sit in Nix's builder (a shell that
// polls for a file) for as long as the test needs, so the worker is in a known phase, with a
// nix-build child and its builder running, when the test strikes.
//
// Each package's derivation carries a nonce, so every test run builds it afresh instead of finding
// it in the Nix store. Test-only: it lives here, never in examples/pkgs.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BUNDLED_SET } from '../helpers/bundled-set.js';

export interface SlowSet {
  /** The package set's directory, for NIXERY_PKGS_PATH. */
  path: string;
  /** Lets the build of `name` finish (now, or at once when it starts later). */
  release(name: string): void;
}

const NAME = /^slow-[a-z]+$/;

/** Writes the set into `dir`, with one waiting package per name (`slow-<word>`). */
export function writeSlowSet(dir: string, names: readonly string[]): SlowSet {
  const releases = join(dir, 'releases');
  const path = join(dir, 'pkgs');
  mkdirSync(releases, { recursive: true });
  mkdirSync(path, { recursive: true });
  for (const name of names) if (!NAME.test(name)) throw new Error(`slow-set: bad name ${name}`);
  // The names are checked above and the paths are ours: nothing untrusted reaches the Nix file or the shell.
  const nonce = randomBytes(8).toString('hex');
  const packages = names.map((name) => {
    const script = `while [ ! -e ${join(releases, name)} ]; do /bin/sleep 0.1; done; /bin/mkdir $out; echo ${name} > $out/${name}`;
    return `  "${name}" = builtins.derivation {
    name = "${name}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" ${JSON.stringify(script)} ];
    nonce = "${nonce}";
  };`;
  });
  writeFileSync(
    join(path, 'default.nix'),
    `# Written by test/chaos/slow-set.ts: the bundled set plus packages whose build waits for a file.
{ system ? builtins.currentSystem, ... }:
import ${BUNDLED_SET} { inherit system; } // {
${packages.join('\n')}
}
`,
  );
  return {
    path,
    release(name) {
      const file = join(releases, name);
      if (!existsSync(file)) writeFileSync(file, '');
    },
  };
}
