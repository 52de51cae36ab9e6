// A package set for worker-phases.test.ts: the bundled offline set (examples/pkgs) plus packages
// that put a worker's build into a known phase for as long as the test needs, observed from
// outside. Test-only: it lives here, never in examples/pkgs, and nothing in apps/ knows of it.
//
// - gated packages (`gate-<word>`): their derivation reads a named pipe (builtins.readFile), so
//   Nix's evaluation of the package (the resolve step's nix-instantiate, which forces the outputs'
//   store paths) blocks in open(2) until the test opens the gate. The pipe is replaced by a
//   regular file then, so every later evaluation goes straight through. Nix's evaluator cannot
//   sleep or poll; a pipe holds it as long as needed without building anything.
// - fresh packages (`fresh-<word>`): tiny derivations, one store path with no references, so
//   their image has exactly two layers (the path and the symlink layer).
//
// Every derivation carries a nonce, so each test run builds and packs it afresh instead of finding
// it in the Nix store.

import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BUNDLED_SET } from '../helpers/bundled-set.js';

export interface PhaseSet {
  /** The package set's directory, for NIXERY_PKGS_PATH. */
  path: string;
  /** Lets the evaluation of gated package `name` go on (now, and at once from then on). */
  openGate(name: string): void;
}

const GATED = /^gate-[a-z]+$/;
const FRESH = /^fresh-[a-z]+$/;
/** What a gated derivation reads once its gate is open, from the pipe or the file. */
const GATE_CONTENT = 'open\n';

export function writePhaseSet(dir: string, names: { gated: readonly string[]; fresh: readonly string[] }): PhaseSet {
  const gates = join(dir, 'gates');
  const path = join(dir, 'pkgs');
  mkdirSync(gates, { recursive: true });
  mkdirSync(path, { recursive: true });
  for (const name of names.gated) if (!GATED.test(name)) throw new Error(`phase-set: bad gated name ${name}`);
  for (const name of names.fresh) if (!FRESH.test(name)) throw new Error(`phase-set: bad fresh name ${name}`);
  // The names are checked above and the paths are ours: nothing untrusted reaches the Nix file or the shell.
  const nonce = randomBytes(8).toString('hex');
  const derivation = (name: string, extra: string) => `  "${name}" = builtins.derivation {
    name = "${name}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" ${JSON.stringify(`/bin/mkdir $out; echo ${name} ${nonce} > $out/${name}`)} ];
    nonce = "${nonce}";${extra}
  };`;
  const packages = [
    ...names.gated.map((name) => {
      execFileSync('mkfifo', [join(gates, name)]);
      return derivation(name, `\n    gate = builtins.readFile ${JSON.stringify(join(gates, name))};`);
    }),
    ...names.fresh.map((name) => derivation(name, '')),
  ];
  writeFileSync(
    join(path, 'default.nix'),
    `# Written by test/chaos/phase-set.ts: the bundled set plus packages whose evaluation waits for a pipe.
{ system ? builtins.currentSystem, ... }:
import ${BUNDLED_SET} { inherit system; } // {
${packages.join('\n')}
}
`,
  );
  return {
    path,
    openGate(name) {
      const gate = join(gates, name);
      const opened = join(gates, `${name}.opened`);
      if (existsSync(opened)) return;
      // A writer on the pipe (O_RDWR never blocks on Linux) wakes an evaluation blocked in open(2),
      // which reads the same bytes as every later one, from the regular file put in its place.
      // Closing the pipe gives the woken reader end-of-file.
      const fd = openSync(gate, constants.O_RDWR | constants.O_NONBLOCK);
      try {
        writeSync(fd, GATE_CONTENT);
        writeFileSync(`${gate}.file`, GATE_CONTENT);
        renameSync(`${gate}.file`, gate);
        writeFileSync(opened, '');
      } finally {
        closeSync(fd);
      }
    },
  };
}
