// The symlink layer: the tree as data, then as a tar that GNU tar extracts into the same tree.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FilesystemStorage, digestHex } from '@nixyard/core';
import { buildSymlinkTree, packSymlinkLayer, type SymlinkTreeNode } from '../../src/pack/symlink-layer.js';
import { nixBuildScript } from '../../../../test/helpers/nix.js';

const sh = (command: string) =>
  execFileSync('/bin/sh', ['-c', command], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });

const DIR: SymlinkTreeNode = { type: 'directory', mode: 0o755 };
const link = (target: string): SymlinkTreeNode => ({ type: 'symlink', target });

describe('symlink layer', () => {
  let work: string;
  let a: string;
  let b: string;
  let c: string;
  let file: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'nixyard-symlink-'));
    a = nixBuildScript('sl-a', [
      'mkdir -p $out/bin $out/share/doc $out/share/man $out/nix-support $out/etc/ssl/certs',
      'echo a > $out/bin/hello; echo env > $out/bin/env; chmod 555 $out/bin/hello $out/bin/env',
      'echo a > $out/share/doc/a.txt; echo hook > $out/nix-support/setup-hook',
      'echo cert > $out/etc/ssl/certs/ca-bundle.crt; ln -s share $out/lib',
    ].join('; '));
    b = nixBuildScript('sl-b', [
      'mkdir -p $out/bin $out/bin-extra $out/share/doc $out/lib $out/nix-support $out/tmp',
      'echo b > $out/bin/hello; echo bash > $out/bin/bash; echo x > $out/bin-extra/x',
      'echo b > $out/share/doc/a.txt; echo b > $out/share/doc/b.txt; echo so > $out/lib/libb.so',
      'echo b > $out/nix-support/propagated-build-inputs; echo t > $out/tmp/b-tmp',
    ].join('; '));
    c = nixBuildScript('sl-c', 'mkdir -p $out/bin; echo env > $out/bin/env; echo file > $out/share');
    file = nixBuildScript('sl-file', 'echo just a file > $out');
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('merges directories, lets the first output win, adds /tmp and /usr/bin/env, skips nix-support', async () => {
    const tree = await buildSymlinkTree([a, b, c, file]);
    assert.deepEqual(
      Object.fromEntries([...tree.nodes].sort(([x], [y]) => (x < y ? -1 : 1))),
      {
        '/bin': DIR,
        '/bin-extra': DIR,
        '/bin-extra/x': link(`${b}/bin-extra/x`),
        '/bin/bash': link(`${b}/bin/bash`),
        '/bin/env': link(`${a}/bin/env`),
        '/bin/hello': link(`${a}/bin/hello`), // b's loses
        '/etc': DIR,
        '/etc/ssl': DIR,
        '/etc/ssl/certs': DIR,
        '/etc/ssl/certs/ca-bundle.crt': link(`${a}/etc/ssl/certs/ca-bundle.crt`),
        '/lib': link(`${a}/lib`), // a's symlink wins over b's directory, so no /lib/libb.so
        '/share': DIR, // c's file of that name loses
        '/share/doc': DIR,
        '/share/doc/a.txt': link(`${a}/share/doc/a.txt`),
        '/share/doc/b.txt': link(`${b}/share/doc/b.txt`),
        '/share/man': DIR,
        '/tmp': { type: 'directory', mode: 0o1777 },
        '/tmp/b-tmp': link(`${b}/tmp/b-tmp`),
        '/usr': DIR,
        '/usr/bin': DIR,
        '/usr/bin/env': link(`${a}/bin/env`), // the first output with a bin/env
      },
    );
  });

  test('without any bin/env there is no /usr, but there is /tmp', async () => {
    const tree = await buildSymlinkTree([b]);
    assert.equal(tree.nodes.has('/usr'), false);
    assert.deepEqual(tree.nodes.get('/tmp'), { type: 'directory', mode: 0o1777 });
  });

  test('packs into a deterministic tar that extracts to the same tree', async () => {
    const storage = new FilesystemStorage(join(work, 'storage'));
    const tree = await buildSymlinkTree([a, b, c]);
    const layer = await packSymlinkLayer(storage, tree, { gzipLevel: 6 });
    const again = await packSymlinkLayer(storage, await buildSymlinkTree([a, b, c]), { gzipLevel: 6 });
    assert.deepEqual(again, { ...layer, created: false });
    assert.equal(layer.created, true);

    const blob = join(storage.rootDir, 'blobs', 'sha256', digestHex(layer.digest));
    sh(`gzip -dc < ${blob} > ${work}/layer.tar`);
    assert.equal(layer.diffId, `sha256:${sh(`sha256sum < ${work}/layer.tar`).split(' ')[0]}`);

    const listing = sh(`tar --full-time --numeric-owner -tvf ${work}/layer.tar`).trim().split('\n');
    const rows = listing.map((line) => {
      const [mode, owner, , date, time, name] = line.split(/\s+/);
      return { mode, owner, when: `${date} ${time}`, name: name ?? '' };
    });
    for (const row of rows) {
      assert.equal(row.owner, '0/0', row.name);
      assert.equal(row.when, '1970-01-01 00:00:01', row.name);
      assert.ok(!row.name.startsWith('/'), row.name);
    }
    // Depth-first: a directory's entries follow it directly (bin/ before bin-extra/), names sorted.
    assert.deepEqual(rows.map((row) => row.name).slice(0, 6), ['bin/', 'bin/bash', 'bin/env', 'bin/hello', 'bin-extra/', 'bin-extra/x']);
    assert.equal(rows.length, tree.nodes.size);

    const root = join(work, 'root');
    sh(`mkdir ${root} && tar -xpf ${work}/layer.tar -C ${root}`);
    for (const [path, node] of tree.nodes) {
      const stat = await lstat(root + path);
      if (node.type === 'directory') {
        assert.ok(stat.isDirectory(), path);
        assert.equal(stat.mode & 0o7777, node.mode, path);
      } else {
        assert.ok(stat.isSymbolicLink(), path);
        assert.equal(stat.mode & 0o7777, 0o777, path);
        assert.equal(await readlink(root + path), node.target, path);
      }
    }
    assert.equal((await lstat(join(root, 'tmp'))).mode & 0o7777, 0o1777);
    assert.equal(await readlink(join(root, 'usr/bin/env')), `${a}/bin/env`);
    await assert.rejects(lstat(join(root, 'nix-support')), { code: 'ENOENT' });
    // The links resolve on a machine that has the store paths, as the image will.
    assert.equal(sh(`cat ${root}/bin/hello`), 'a\n');
  });
});
