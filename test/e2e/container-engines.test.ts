// Podman and containerd pull from a running Nixyard and unpack a multi-layer image whose layers
// are series of gzip members (one per 1 MiB block of tar, docs/layering.md "Compression"), then a
// program from the unpacked rootfs runs under chroot. skopeo and umoci do the same in pull-suite.ts;
// with these two, every client family the docs name has read such layers (both check each layer's
// uncompressed digest against the image config's diff_id while unpacking).
//
// Neither engine runs a container here (that needs cgroups and rlimits a test machine may not
// grant): podman mounts the image (`podman image mount`), containerd's `ctr images mount` mounts
// the unpacked snapshot. Each engine gets private storage in a temp dir; containerd runs as a daemon
// of this test with its own root, state, socket and a minimal config. A test is skipped, saying
// why, only when its binary is not installed.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { startContainerd } from '../helpers/containerd.js';
import { startStack, type TestStack } from '../helpers/stack.js';
import { tempDir } from '../helpers/temp-dir.js';

const IMAGE = 'shell/jq';
const CHROOT = existsSync('/usr/sbin/chroot') ? '/usr/sbin/chroot' : 'chroot';
/** Each client step is bounded, so a hung client fails the test instead of stalling the suite. */
const STEP_TIMEOUT_MS = 60_000;

const has = (binary: string) => spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
const missing = (...binaries: string[]) => {
  const absent = binaries.filter((b) => !has(b));
  return absent.length > 0 ? `${absent.join(' and ')} not installed (scripts/install-system-packages.sh --test installs it)` : false;
};
const podmanMissing = missing('podman');
const containerdMissing = missing('containerd', 'ctr');

function run(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: STEP_TIMEOUT_MS });
}

/** How many gzip members a blob holds (Nixyard's members have the plain 10-byte header and no extra fields). */
function gzipMembers(blob: Buffer): number {
  let members = 0;
  for (let at = 0; at < blob.length; members++) {
    assert.deepEqual([...blob.subarray(at, at + 4)], [0x1f, 0x8b, 8, 0], `a plain gzip header at ${at}`);
    const { engine } = inflateRawSync(blob.subarray(at + 10), { info: true }) as unknown as { engine: { bytesWritten: number } };
    at += 10 + engine.bytesWritten + 8;
  }
  return members;
}

/** `jq --version` and bash, run inside the rootfs with nothing from the host. */
function runsInside(rootfs: string): void {
  assert.match(execFileSync('env', ['-i', 'PATH=/bin', CHROOT, rootfs, 'jq', '--version'], { encoding: 'utf8' }), /^jq-1\.\d/);
  assert.equal(execFileSync('env', ['-i', 'PATH=/bin', CHROOT, rootfs, 'bash', '-c', 'echo ok'], { encoding: 'utf8' }), 'ok\n');
}

/** glibc's libc (in a layer of several members: glibc is over 4 MiB) is byte for byte the store's. */
function sameAsStore(rootfs: string): void {
  const glibc = readdirSync(join(rootfs, 'nix/store')).filter((name) => /^[a-z0-9]{32}-glibc-/.test(name));
  assert.equal(glibc.length, 1, `one glibc in the image: ${glibc.join(', ')}`);
  const libc = `/nix/store/${glibc[0]}/lib/libc.so.6`;
  assert.ok(readFileSync(join(rootfs, libc)).equals(readFileSync(libc)), `${libc} as in the store`);
}

describe('container engines pull images whose layers are gzip members', { skip: podmanMissing && containerdMissing ? `${podmanMissing}; ${containerdMissing}` : false }, () => {
  let stack: TestStack;
  const work = tempDir('e2e-engines');

  before(async () => {
    stack = await startStack();
    const base = `http://${stack.registry}/v2/${IMAGE}`;
    const res = await fetch(`${base}/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    assert.equal(res.status, 200);
    const manifest = (await res.json()) as { layers: Array<{ digest: string; size: number }> };
    const blobs = await Promise.all(manifest.layers.map(async (l) => Buffer.from(await (await fetch(`${base}/blobs/${l.digest}`)).arrayBuffer())));
    const members = blobs.map(gzipMembers);
    // What this test is about: several layers, and some of them more than one member.
    assert.ok(manifest.layers.length >= 3, `${manifest.layers.length} layers`);
    assert.ok(members.filter((n) => n > 1).length >= 2, `members per layer: ${members.join(', ')}`);
  });
  after(async () => {
    await stack?.stop();
    work.cleanup();
  });

  test('podman pull, then the mounted image runs jq and bash; files are byte for byte the store’s', { skip: podmanMissing }, () => {
    const podman = (...args: string[]) =>
      run('podman', ['--root', join(work.path, 'podman-root'), '--runroot', join(work.path, 'podman-run'), '--storage-driver', 'vfs', ...args]);
    const ref = `${stack.registry}/${IMAGE}:latest`;
    podman('pull', '--quiet', '--tls-verify=false', `docker://${ref}`);
    const rootfs = podman('image', 'mount', ref).trim();
    try {
      runsInside(rootfs);
      sameAsStore(rootfs);
    } finally {
      podman('image', 'umount', ref);
      podman('rmi', '--force', ref);
    }
  });

  test('ctr image pull into a private containerd, then the mounted snapshot runs jq and bash', { skip: containerdMissing }, async () => {
    const dir = join(work.path, 'containerd');
    const daemon = await startContainerd(dir);
    const { address } = daemon;
    const ctr = (...args: string[]) => run('ctr', ['--address', address, '--namespace', 'nixyard-e2e', ...args]);
    const ref = `${stack.registry}/${IMAGE}:latest`;
    const mountpoint = join(dir, 'rootfs');
    mkdirSync(mountpoint);
    let mounted = false;
    try {
      ctr('image', 'pull', '--plain-http', '--snapshotter', 'native', ref);
      ctr('images', 'mount', '--snapshotter', 'native', ref, mountpoint);
      mounted = true;
      runsInside(mountpoint);
      sameAsStore(mountpoint);
    } finally {
      if (mounted) ctr('images', 'unmount', mountpoint);
      await daemon.stop();
    }
  });
});
