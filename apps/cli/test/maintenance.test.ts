// `nixyard fsck` in-process on a filesystem storage in a temp dir, configured by STORAGE_PATH alone:
// what it prints about temporary files writers left behind, its exit codes, --grace and --repair,
// and the --help texts. gc needs Redis (builds in flight); test/e2e/maintenance.test.ts runs it.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, test } from 'node:test';
import { FilesystemStorage } from '@nixyard/core';
import { EXIT } from '../src/commands.js';
import { humanAge } from '../src/maintenance.js';
import { runCli } from './run-cli.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'nixyard-cli-fsck-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string>) {
  return runCli(args, { env });
}

/** A file in tmp/ as a writer that died leaves it, last written `ageSeconds` ago. */
function leftover(name: string, bytes: number, ageSeconds: number): string {
  mkdirSync(join(root, 'tmp'), { recursive: true });
  const path = join(root, 'tmp', name);
  writeFileSync(path, Buffer.alloc(bytes));
  const when = new Date(Date.now() - ageSeconds * 1000);
  utimesSync(path, when, when);
  return path;
}

test('fsck reports temporary files older than the grace period and exits 1; --repair removes them', async () => {
  const storage = new FilesystemStorage(root);
  await storage.writeBlob(Readable.from([Buffer.from('a blob')]));
  const dead = leftover('4242-dead', 3 * 1024 * 1024, 3 * 86_400);
  const young = leftover('4243-young', 1024, 60);

  const check = await cli(['fsck'], { STORAGE_PATH: root });
  assert.equal(check.code, EXIT.FAILED, check.out + check.err);
  assert.match(check.out, /^stale temporary tmp\/4242-dead 3\.0 MiB, last written 3d ago$/m);
  assert.match(check.out, /^1 temporary items older than the grace period hold 3\.0 MiB; the oldest was last written 3d ago/m);
  assert.match(check.out, /checked 1 of 1 blobs: problems found/);
  assert.doesNotMatch(check.out, /4243-young/);

  const shorter = await cli(['fsck', '--grace', '30s', '--json'], { STORAGE_PATH: root });
  assert.equal(shorter.code, EXIT.FAILED);
  const report = JSON.parse(shorter.out) as { staleTemporary: Array<{ location: string }>; staleTemporaryBytes: number; ok: boolean };
  assert.deepEqual(report.staleTemporary.map((item) => item.location), ['tmp/4242-dead', 'tmp/4243-young']);
  assert.equal(report.staleTemporaryBytes, 3 * 1024 * 1024 + 1024);

  const repair = await cli(['fsck', '--repair'], { STORAGE_PATH: root });
  assert.equal(repair.code, EXIT.OK, repair.out + repair.err);
  assert.match(repair.out, /and 1 temporary items \(3\.0 MiB\)/);
  assert.equal(existsSync(dead), false);
  assert.equal(existsSync(young), true, 'younger than the grace period: kept');

  const clean = await cli(['fsck'], { STORAGE_PATH: root });
  assert.equal(clean.code, EXIT.OK, clean.out);
  assert.match(clean.out, /checked 1 of 1 blobs: no problems/);
});

test('fsck needs no package source, and says which storage variable is missing', async () => {
  const missing = await cli(['fsck'], {});
  assert.equal(missing.code, EXIT.INVALID);
  assert.equal(missing.err, 'nixyard: STORAGE_PATH: expected an absolute path (required by the filesystem storage backend), got nothing\n');
  const s3 = await cli(['gc'], { NIXERY_STORAGE_BACKEND: 's3' });
  assert.equal(s3.code, EXIT.INVALID);
  assert.match(s3.err, /^nixyard: S3_BUCKET: expected a bucket name/);
  assert.doesNotMatch(missing.err + s3.err, /NIXERY_CHANNEL/);
});

test('--help of gc and fsck names the temporary files and the grace period', async () => {
  for (const command of ['gc', 'fsck']) {
    const help = await cli([command, '--help'], {});
    assert.equal(help.code, EXIT.OK);
    assert.match(help.out, /temporary files/, command);
    assert.match(help.out, /--grace <duration>[\s\S]*\(default: 24h\)/, command);
  }
});

test('ages read in the unit that fits', () => {
  assert.deepEqual([59, 119, 120, 7199, 7200, 172_799, 172_800].map(humanAge), ['59s', '119s', '2m', '119m', '2h', '47h', '2d']);
});
