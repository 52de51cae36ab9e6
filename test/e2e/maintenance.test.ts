// Storage maintenance through the CLI against a farm's real storage: `nixyard gc` sweeps what no
// manifest uses and nothing else; `nixyard fsck` finds altered and missing blobs, and `--repair`
// makes the affected images rebuild on their next pull. A writer killed mid-blob leaves its temp
// file, which fsck reports once older than the grace period and gc removes; both need only the
// storage settings.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { ManifestRecordSchema, buildJobFor, manifestRecordKey, parseImageName, PATH_REVISION, type ManifestRecord } from '@nixyard/core';
import { BUNDLED_SET, REPO_ROOT } from '../helpers/bundled-set.js';
import { metricValue, startStack, type TestStack } from '../helpers/stack.js';

const NIXYARD = join(REPO_ROOT, 'apps/cli/bin/nixyard.mjs');
let stack: TestStack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

function nixyard(args: string[], env: NodeJS.ProcessEnv = stack.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NIXYARD, args, { env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const recordFile = (name: string) => {
  const job = buildJobFor({ spec: parseImageName(name), source: { kind: 'path', path: BUNDLED_SET }, revision: PATH_REVISION });
  return join(stack.storagePath, `${manifestRecordKey(job.imageKey)}.json`);
};
const record = (name: string): ManifestRecord => ManifestRecordSchema.parse(JSON.parse(readFileSync(recordFile(name), 'utf8')));
const blobFile = (digest: string) => join(stack.storagePath, 'blobs', 'sha256', digest.slice('sha256:'.length));
const blobsOf = (r: ManifestRecord) => [r.config.digest, r.manifests.oci.digest, r.manifests.docker.digest, ...r.layers.map((l) => l.digest)];

/** A full pull over HTTP: the manifest, then every blob it names. */
async function pulls(name: string): Promise<boolean> {
  const res = await fetch(`http://${stack.registry}/v2/${name}/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (res.status !== 200) return false;
  const manifest = (await res.json()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const blob = await fetch(`http://${stack.registry}/v2/${name}/blobs/${digest}`);
    await blob.arrayBuffer();
    if (blob.status !== 200) return false;
  }
  return true;
}

test('gc deletes the blobs only a deleted image used, keeps shared ones, and the others still pull', async () => {
  for (const name of ['shell/hello', 'shell/jq', 'shell/curl']) assert.ok(await pulls(name), name);
  const [hello, jq, curl] = [record('shell/hello'), record('shell/jq'), record('shell/curl')];
  const kept = new Set([...blobsOf(hello), ...blobsOf(jq)]);
  const onlyCurl = blobsOf(curl).filter((d) => !kept.has(d));
  const shared = blobsOf(curl).filter((d) => kept.has(d));
  assert.ok(onlyCurl.length >= 4 && shared.length >= 3, `curl has its own blobs (${onlyCurl.length}) and shared ones (${shared.length})`);

  unlinkSync(recordFile('shell/curl'));
  const dry = await nixyard(['gc', '--grace', '0', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  for (const digest of onlyCurl) assert.match(dry.stdout, new RegExp(`would delete ${digest}`));
  assert.ok(onlyCurl.every((d) => existsSync(blobFile(d))), 'a dry run deletes nothing');

  const gc = await nixyard(['gc', '--grace', '0', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  const report = JSON.parse(gc.stdout) as { swept: Array<{ digest: string }> };
  assert.deepEqual(report.swept.map((b) => b.digest).sort(), [...onlyCurl].sort());
  for (const digest of onlyCurl) assert.equal(existsSync(blobFile(digest)), false, `${digest} is gone`);
  for (const digest of kept) assert.ok(existsSync(blobFile(digest)), `${digest} is kept`);

  const builds = await metricValue(stack.workerMetricsUrl, 'nixyard_builds_total{result="started"}');
  assert.ok(await pulls('shell/hello'));
  assert.ok(await pulls('shell/jq'));
  assert.equal(await metricValue(stack.workerMetricsUrl, 'nixyard_builds_total{result="started"}'), builds, 'served from what gc kept');
  assert.ok(await pulls('shell/curl'), 'the deleted image simply builds again');
});

test('fsck finds an altered blob and a manifest whose layer was deleted; --repair makes them rebuild', async () => {
  const hello = record('shell/hello');
  const jq = record('shell/jq');
  const helloOnly = hello.layers.map((l) => l.digest).filter((d) => !jq.layers.some((l) => l.digest === d));
  const jqOnly = jq.layers.map((l) => l.digest).filter((d) => !hello.layers.some((l) => l.digest === d));
  const altered = helloOnly[0]!;
  const deleted = jqOnly[0]!;
  writeFileSync(blobFile(altered), 'these are not the bytes you are looking for');
  unlinkSync(blobFile(deleted));

  const check = await nixyard(['fsck']);
  assert.equal(check.code, 1, 'problems found');
  assert.match(check.stdout, new RegExp(`corrupt blob ${altered}`));
  assert.match(check.stdout, new RegExp(`broken manifest record manifests/${jq.imageKey}: missing ${deleted}`));
  assert.match(check.stdout, new RegExp(`broken manifest record manifests/${hello.imageKey}: corrupt ${altered}`));

  const repair = await nixyard(['fsck', '--repair']);
  assert.equal(repair.code, 0, repair.stdout + repair.stderr);
  assert.equal((await nixyard(['fsck'])).code, 0, 'clean after the repair');

  assert.ok(await pulls('shell/hello'), 'rebuilt');
  assert.ok(await pulls('shell/jq'), 'rebuilt');
  assert.equal((await nixyard(['fsck'])).code, 0);
});

const MiB = 1024 * 1024;

/**
 * A process of its own streaming a random blob into the stack's storage through the filesystem
 * backend, as a worker packing a layer does. It writes at most 512 MiB and then waits (still
 * mid-write), so however late it is killed, the disk is spared.
 */
const WRITER = `
const { FilesystemStorage } = await import(process.env.CORE_URL);
const { randomBytes } = await import('node:crypto');
async function* layer() {
  for (let i = 0; i < 2048; i++) {
    yield randomBytes(256 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await new Promise(() => setInterval(() => undefined, 60_000));
}
await new FilesystemStorage(process.env.STORAGE_PATH).writeBlob(layer());
`;

const tmpDir = () => join(stack.storagePath, 'tmp');
const tmpNames = () => (existsSync(tmpDir()) ? readdirSync(tmpDir()) : []);

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

test('a writer killed mid-blob leaves a temp file: fsck reports it once past the grace period, gc removes it, every blob stays sound', async () => {
  const before = new Set(tmpNames());
  const writer = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', WRITER], {
    cwd: REPO_ROOT,
    env: { ...process.env, CORE_URL: pathToFileURL(join(REPO_ROOT, 'packages/core/src/index.ts')).href, STORAGE_PATH: stack.storagePath },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => writer.once('exit', (_code, signal) => resolve(signal)));
  let name: string | undefined;
  try {
    const deadline = Date.now() + 60_000;
    while (name === undefined || statSync(join(tmpDir(), name)).size < 24 * MiB) {
      assert.equal(writer.exitCode, null, 'the writer is still writing');
      assert.ok(Date.now() < deadline, 'the writer wrote 24 MiB within a minute');
      await new Promise((resolve) => setTimeout(resolve, 20));
      name ??= tmpNames().find((n) => !before.has(n));
    }
  } finally {
    writer.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  const path = join(tmpDir(), name);
  const size = statSync(path).size;
  assert.ok(size >= 24 * MiB && size <= 512 * MiB, `${size} bytes left behind`);

  // Young: maybe a write in progress. Reported by nothing, removed by nothing.
  const young = await nixyard(['fsck', '--repair']);
  assert.equal(young.code, 0, young.stdout + young.stderr);
  assert.doesNotMatch(young.stdout, new RegExp(name));
  const keep = await nixyard(['gc', '--json']);
  assert.equal(keep.code, 0, keep.stderr);
  const kept = JSON.parse(keep.stdout) as { temporary: unknown[]; keptYoungTemporary: number };
  assert.deepEqual(kept.temporary, []);
  assert.ok(kept.keptYoungTemporary >= 1);
  assert.ok(existsSync(path), 'a young temp file is never touched');

  // A day and an hour later (its mtime set back, rather than waiting).
  const lastWritten = new Date(Date.now() - 25 * 3600_000);
  utimesSync(path, lastWritten, lastWritten);
  const mib = (size / MiB).toFixed(1);
  const check = await nixyard(['fsck']);
  assert.equal(check.code, 1, 'problems found: ' + check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`^stale temporary tmp/${name} ${mib} MiB, last written 25h ago$`, 'm'));
  assert.match(check.stdout, new RegExp(`^1 temporary items older than the grace period hold ${mib} MiB; the oldest was last written 25h ago`, 'm'));
  const json = JSON.parse((await nixyard(['fsck', '--json'])).stdout) as { staleTemporary: Array<{ location: string; size: number }>; staleTemporaryBytes: number; oldestTemporaryAgeSeconds: number };
  assert.deepEqual(json.staleTemporary.map((item) => [item.location, item.size]), [[`tmp/${name}`, size]]);
  assert.equal(json.staleTemporaryBytes, size);
  assert.ok(Math.abs(json.oldestTemporaryAgeSeconds - 25 * 3600) < 60, String(json.oldestTemporaryAgeSeconds));
  assert.ok((await nixyard(['fsck', '--grace', '26h'])).code === 0, 'within a longer grace period it is no problem');

  const dry = await nixyard(['gc', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`^would delete temporary tmp/${name} ${mib} MiB`, 'm'));
  assert.ok(existsSync(path), 'a dry run deletes nothing');

  const gc = await nixyard(['gc', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  const report = JSON.parse(gc.stdout) as { swept: unknown[]; temporary: Array<{ location: string; size: number }>; temporaryBytes: number };
  assert.deepEqual(report.temporary.map((item) => [item.location, item.size]), [[`tmp/${name}`, size]]);
  assert.equal(report.temporaryBytes, size);
  assert.deepEqual(report.swept, [], 'every blob is younger than the grace period or in use');
  assert.equal(existsSync(path), false, 'gc removed it');
  assert.equal((await nixyard(['fsck'])).code, 0, 'clean again');

  const blobDir = join(stack.storagePath, 'blobs', 'sha256');
  const blobs = readdirSync(blobDir);
  assert.ok(blobs.length > 0);
  for (const blob of blobs) assert.equal(await sha256File(join(blobDir, blob)), blob, `blob ${blob} hashes to its name`);
  assert.ok(await pulls('shell/hello'), 'the farm still serves');
});

test('fsck and gc run with the storage settings only: no package source, no role settings', async () => {
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  assert.equal(stack.env.NIXERY_PKGS_PATH !== undefined, true, 'the farm itself has a package source');
  const fsck = await nixyard(['fsck'], { ...base, STORAGE_PATH: stack.storagePath });
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  assert.match(fsck.stdout, /checked \d+ of \d+ blobs: no problems/);
  // gc asks Redis whether builds are in flight, so it takes REDIS_URL as well.
  const gc = await nixyard(['gc', '--dry-run'], { ...base, STORAGE_PATH: stack.storagePath, REDIS_URL: stack.redis.url });
  assert.equal(gc.code, 0, gc.stdout + gc.stderr);
  assert.match(gc.stdout, /manifests keep \d+ blobs/);
  const none = await nixyard(['fsck'], base);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^nixyard: STORAGE_PATH: expected an absolute path/);
});
