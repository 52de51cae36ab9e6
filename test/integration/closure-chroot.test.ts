// Programs of the bundled set run from nothing but their own closure: copy `nix-store -qR` of a
// package into an empty root and run it there under chroot with an empty environment. This is
// what makes an image built from the set usable, and it proves the patched ELF references are real.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildBundled, prepareBundledSet } from '../helpers/bundled-set.js';
import { nixStoreClosure } from '../helpers/nix.js';
import { tempDir } from '../helpers/temp-dir.js';

function chrootWithClosureOf(out: string): { root: string; cleanup: () => void } {
  const dir = tempDir('chroot');
  // `cp --parents` keeps /nix/store/... below the target only when run from /.
  execFileSync('cp', ['-a', '--parents', ...nixStoreClosure([out]), dir.path], { cwd: '/' });
  return { root: dir.path, cleanup: dir.cleanup };
}

// chroot lives in /usr/sbin, which a non-login PATH may lack.
const CHROOT = existsSync('/usr/sbin/chroot') ? '/usr/sbin/chroot' : 'chroot';

function runInChroot(root: string, program: string, args: string[]): string {
  return execFileSync('env', ['-i', CHROOT, root, program, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('bundled programs run inside a chroot of their closure', () => {
  const cleanups: Array<() => void> = [];
  before(prepareBundledSet);
  after(() => cleanups.forEach((c) => c()));

  test('hello', () => {
    const hello = buildBundled('hello');
    const { root, cleanup } = chrootWithClosureOf(hello);
    cleanups.push(cleanup);
    assert.equal(runInChroot(root, `${hello}/bin/hello`, []), 'Hello, world!\n');
  });

  test('jq --version', () => {
    const jq = buildBundled('jq');
    const { root, cleanup } = chrootWithClosureOf(jq);
    cleanups.push(cleanup);
    assert.match(runInChroot(root, `${jq}/bin/jq`, ['--version']), /^jq-\d+\.\d+/);
    // Only the closure is there: nothing of the host's /usr leaked in.
    assert.throws(() => runInChroot(root, '/usr/bin/jq', ['--version']));
  });
});
