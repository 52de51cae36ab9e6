// A git repository used as a package source (NIXERY_PKGS_REPO=file://...) in tests. Its
// default.nix wraps the bundled package set, and each commit changes `hello`, so every commit
// is a different image:
//   main:    A (the bundled hello) ── B (hello wrapped, "b")
//   feature: A ── C (hello wrapped, "c")
// `advanceMain` adds one more commit to main, for moving-target tests.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_SET } from './bundled-set.js';

export interface GitFixture {
  url: string;
  commits: { a: string; b: string; c: string };
  /** Commits a new variant of hello to main; returns the commit. */
  advanceMain(variant: string): string;
}

function defaultNix(variant: string | undefined): string {
  const base = `{ system ? builtins.currentSystem, ... }@args:\nlet pkgs = import ${JSON.stringify(BUNDLED_SET)} args; in\n`;
  if (!variant) return `${base}pkgs\n`;
  // A wrapper whose store path differs per variant; it links the real hello so it still runs.
  return `${base}pkgs // {
  hello = derivation {
    name = "hello-${variant}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin && /bin/ln -s \${pkgs.hello}/bin/hello $out/bin/hello; exit 0" ];
  };
}
`;
}

export function createGitFixture(dir: string): GitFixture {
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.email=test@nixyard.invalid', '-c', 'user.name=test', ...args], { cwd: dir, encoding: 'utf8' }).trim();
  const commit = (variant: string | undefined, message: string) => {
    writeFileSync(join(dir, 'default.nix'), defaultNix(variant));
    git('add', 'default.nix');
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  git('init', '-q', '-b', 'main');
  const a = commit(undefined, 'A: the bundled set');
  git('checkout', '-q', '-b', 'feature');
  const c = commit('c', 'C: hello c');
  git('checkout', '-q', 'main');
  const b = commit('b', 'B: hello b');
  return {
    url: `file://${dir}`,
    commits: { a, b, c },
    advanceMain: (variant) => commit(variant, `hello ${variant}`),
  };
}
