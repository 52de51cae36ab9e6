// The worker's Nix side against real Nix: the bundled package set for resolve/build/graph, and
// tiny throw-away package sets for the failure paths (unknown names, failing and hanging builds).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BuildFailureError, parseImageName, type PackageSource } from '@nixyard/core';
import { buildClosure } from '../../src/build-closure.js';
import { Nix, nixSource } from '../../src/nix/nix.js';
import { BUNDLED_SET, REPO_ROOT, prepareBundledSet } from '../../../../test/helpers/bundled-set.js';
import { NIX_ENV, nixStoreClosure } from '../../../../test/helpers/nix.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

const bundled: PackageSource = { kind: 'path', path: BUNDLED_SET };
const nix = new Nix({ timeoutSeconds: 600, env: NIX_ENV });

function failureOf(err: unknown) {
  assert.ok(err instanceof BuildFailureError, `expected a BuildFailureError, got ${String(err)}`);
  return err.failure;
}

function directReferences(path: string): string[] {
  const out = execFileSync('nix-store', ['-q', '--references', path], { env: NIX_ENV, encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

describe('Nix side against the bundled package set', () => {
  before(prepareBundledSet);

  for (const name of ['shell/jq', 'xorg.xev']) {
    test(`resolves, builds and graphs ${name}; the graph is nix-store's`, async () => {
      const spec = parseImageName(name);
      const built = await buildClosure(nix, { source: bundled, revision: 'local', system: spec.system, packages: spec.packages });

      assert.deepEqual(built.packages.map((p) => p.name), spec.packages);
      assert.deepEqual(built.graph.roots, built.outputs);
      for (const output of built.outputs) assert.ok(existsSync(output), `${output} was built`);

      const closure = nixStoreClosure(built.outputs);
      assert.deepEqual(built.graph.paths.map((p) => p.path), closure);
      for (const info of built.graph.paths) {
        assert.deepEqual(info.references, directReferences(info.path), `references of ${info.path}`);
        assert.ok(info.narSize > 0, `${info.path} has a NAR size`);
      }
      // A real graph: more than the outputs themselves, and glibc shared by them.
      assert.ok(closure.length > built.outputs.length, 'the closure has dependencies');
      assert.ok(closure.some((p) => /-glibc-/.test(p)), 'glibc is in the closure');
    });
  }

  test('reports exactly the unknown names, nested ones included', async () => {
    const spec = parseImageName('hello/nosuchpkg/xorg.nosuch');
    const result = await nix.resolve({ source: bundled, revision: 'local', system: spec.system, packages: spec.packages });
    assert.deepEqual(result, { kind: 'missing', unknown: ['nosuchpkg', 'xorg.nosuch'], unavailable: [] });
  });

  test('an attribute set that is not a package counts as unknown', async () => {
    const result = await nix.resolve({ source: bundled, revision: 'local', system: 'x86_64-linux', packages: ['hello', 'xorg'] });
    assert.deepEqual(result, { kind: 'missing', unknown: ['xorg'], unavailable: [] });
  });
});

describe('Nix side failure paths', () => {
  const dir = tempDir('nix-failures');
  const marker = join(dir.path, 'built-marker');
  const nonce = `${process.pid}-${Date.now()}`; // a fresh derivation per run, never cached
  writeFileSync(
    join(dir.path, 'default.nix'),
    `{ system ? builtins.currentSystem, ... }:
let mk = name: script: derivation {
  inherit name system; builder = "/bin/sh"; args = [ "-c" script ]; nonce = "${nonce}";
}; in {
  hello = mk "marked-hello" "echo built > ${marker}; echo hi > $out; exit 0";
  failing = mk "failing" "echo 'compiling the thing'; echo 'error: the thing is broken' >&2; exit 3";
  hanging = mk "hanging" "/bin/sleep 120; exit 0";
  broken = throw "this package is marked as broken";
  xorg = { };
}
`,
  );
  const source: PackageSource = { kind: 'path', path: dir.path };
  after(dir.cleanup);

  test('unknown names stop the build before anything is realised', async () => {
    await assert.rejects(buildClosure(nix, { source, revision: 'local', system: 'x86_64-linux', packages: ['hello', 'nosuchpkg', 'xorg.nosuch'] }), (err) => {
      assert.deepEqual(failureOf(err), {
        code: 'UNKNOWN_PACKAGES',
        message: 'unknown packages: nosuchpkg, xorg.nosuch',
        packages: ['nosuchpkg', 'xorg.nosuch'],
      });
      return true;
    });
    assert.equal(existsSync(marker), false, 'hello was not built');

    // Control: the same package alone is built, so the marker above could have appeared.
    await buildClosure(nix, { source, revision: 'local', system: 'x86_64-linux', packages: ['hello'] });
    assert.equal(existsSync(marker), true, 'hello was built');
  });

  test('a package that throws on evaluation is unavailable, not unknown', async () => {
    const result = await nix.resolve({ source, revision: 'local', system: 'x86_64-linux', packages: ['broken', 'hello'] });
    assert.deepEqual(result, { kind: 'missing', unknown: [], unavailable: ['broken'] });
  });

  test('a failing build reports BUILD_FAILED with the log tail', async () => {
    await assert.rejects(buildClosure(nix, { source, revision: 'local', system: 'x86_64-linux', packages: ['failing'] }), (err) => {
      const failure = failureOf(err);
      assert.equal(failure.code, 'BUILD_FAILED');
      assert.match(failure.code === 'BUILD_FAILED' ? failure.logTail : '', /error: the thing is broken/);
      return true;
    });
  });

  test('a build past the timeout is killed and reported as TIMEOUT', async () => {
    const quick = new Nix({ timeoutSeconds: 2, env: NIX_ENV });
    const started = performance.now();
    await assert.rejects(buildClosure(quick, { source, revision: 'local', system: 'x86_64-linux', packages: ['hanging'] }), (err) => {
      const failure = failureOf(err);
      assert.equal(failure.code, 'TIMEOUT');
      assert.equal(failure.code === 'TIMEOUT' ? failure.seconds : 0, 2);
      return true;
    });
    assert.ok(performance.now() - started < 60_000, 'the build did not run to its end');
    // The builder, which Nix runs in a session of its own, is gone too.
    const leftovers = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() === '/bin/sleep 120');
    assert.deepEqual(leftovers, []);
  });

  test('hostile names are refused before Nix runs', async () => {
    const broken = new Nix({ timeoutSeconds: 5, env: { ...NIX_ENV, PATH: '/nonexistent' } });
    for (const hostile of ['a"b', '${builtins.abort "x"}', '../etc', 'a b']) {
      await assert.rejects(buildClosure(broken, { source, revision: 'local', system: 'x86_64-linux', packages: [hostile] }), (err) => {
        assert.equal((err as { code?: string }).code, 'NAME_INVALID', `${hostile} is refused by the grammar, not by a failed spawn`);
        return true;
      });
    }
  });
});

describe('package sources as Nix sees them', () => {
  function sourceSpec(source: Record<string, string>): unknown {
    const out = execFileSync(
      'nix-instantiate',
      ['--eval', '--strict', '--json', join(REPO_ROOT, 'apps/worker/nix/resolve.nix'), '--argstr', 'sourceJSON', JSON.stringify(source), '--argstr', 'system', 'x86_64-linux', '--argstr', 'packagesJSON', '[]', '-A', 'sourceSpec'],
      { env: NIX_ENV, encoding: 'utf8' },
    );
    return JSON.parse(out);
  }

  test('a channel name is fetched from the channel, a commit from that nixpkgs commit', () => {
    // What Nix would download; the download itself cannot be made from this machine.
    assert.deepEqual(sourceSpec(nixSource({ kind: 'channel', channel: 'nixos-unstable' }, 'nixos-24.05')), {
      tarball: 'https://nixos.org/channels/nixos-24.05/nixexprs.tar.xz',
    });
    const commit = '0123456789abcdef0123456789abcdef01234567';
    assert.deepEqual(sourceSpec(nixSource({ kind: 'channel', channel: 'nixos-unstable' }, commit)), {
      tarball: `https://github.com/NixOS/nixpkgs/archive/${commit}.tar.gz`,
    });
  });

  test('a git source is fetched at the job revision from any ref', () => {
    const rev = 'fedcba9876543210fedcba9876543210fedcba98';
    assert.deepEqual(sourceSpec(nixSource({ kind: 'git', url: 'file:///srv/nixpkgs' }, rev)), {
      git: { url: 'file:///srv/nixpkgs', rev, allRefs: true },
    });
  });

  test('a path is used as it is', () => {
    assert.deepEqual(sourceSpec(nixSource({ kind: 'path', path: '/srv/pkgs' }, 'unversioned')), { path: '/srv/pkgs' });
  });
});
