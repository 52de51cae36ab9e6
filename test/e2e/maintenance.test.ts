// Storage maintenance through the CLI against a farm's real storage: `nixyard gc` sweeps what no
// manifest uses and nothing else; `nixyard fsck` finds altered and missing blobs, and `--repair`
// makes the affected images rebuild on their next pull.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

function nixyard(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NIXYARD, args, { env: stack.env }, (error, stdout, stderr) => {
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
