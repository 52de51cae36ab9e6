// Package sources and tags through the whole system: a git repository (file://) as
// NIXERY_PKGS_REPO, and a local path, each with a short NIXERY_MANIFEST_TTL.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { createGitFixture, type GitFixture } from '../helpers/git-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';
import { metricValue, startStack, type TestStack } from '../helpers/stack.js';

// The TTL is a window on the API's own clock, in another process, so it cannot be moved like the
// unit test's (apps/api/test/source-resolver.test.ts). Each "after the TTL" step sleeps past it,
// which a busy machine only lengthens; each "within the TTL" step must fit a few HTTP requests
// and a git commit into it, which a busy 2-core machine can slow to seconds: hence 4 s, not 1-2.
const TTL_SECONDS = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function manifest(stack: TestStack, name: string, tag: string) {
  const res = await fetch(`http://${stack.registry}/v2/${name}/manifests/${tag}`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
  const body = await res.text();
  return { status: res.status, digest: res.headers.get('docker-content-digest'), body };
}

async function labels(stack: TestStack, name: string, tag: string): Promise<Record<string, string>> {
  const { body } = await manifest(stack, name, tag);
  const config = (JSON.parse(body) as { config: { digest: string } }).config.digest;
  const blob = (await (await fetch(`http://${stack.registry}/v2/${name}/blobs/${config}`)).json()) as { config: { Labels: Record<string, string> } };
  return blob.config.Labels;
}

describe('a git repository as the package source', () => {
  const dir = tempDir('git-repo');
  let fixture: GitFixture;
  let stack: TestStack;
  before(async () => {
    fixture = createGitFixture(dir.path);
    stack = await startStack({ env: { NIXERY_PKGS_REPO: fixture.url, NIXERY_PKGS_PATH: '', NIXERY_MANIFEST_TTL: String(TTL_SECONDS) } });
  });
  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  test('two commits are two images, each labelled with its revision', async () => {
    const a = await manifest(stack, 'hello', fixture.commits.a);
    const b = await manifest(stack, 'hello', fixture.commits.b);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.notEqual(a.digest, b.digest);
    assert.equal((await labels(stack, 'hello', fixture.commits.a))['org.opencontainers.image.revision'], fixture.commits.a);
    assert.equal((await labels(stack, 'hello', fixture.commits.b))['dev.nixyard.packages'], 'hello');
  });

  test('latest is the default branch head, a branch name its head', async () => {
    assert.equal((await manifest(stack, 'hello', 'latest')).digest, (await manifest(stack, 'hello', fixture.commits.b)).digest);
    assert.equal((await manifest(stack, 'hello', 'feature')).digest, (await manifest(stack, 'hello', fixture.commits.c)).digest);
    const unknown = await manifest(stack, 'hello', 'no-such-branch');
    assert.equal(unknown.status, 404);
    assert.equal((JSON.parse(unknown.body) as { errors: Array<{ code: string }> }).errors[0]!.code, 'MANIFEST_UNKNOWN');
  });

  test('tags/list names latest and the branches, in lexical order', async () => {
    const res = await fetch(`http://${stack.registry}/v2/hello/tags/list`);
    const tags = ((await res.json()) as { tags: string[] }).tags;
    assert.deepEqual(tags, ['feature', 'latest', 'main']);
  });

  test('a commit-pinned image is served from cache long after the TTL', async () => {
    await manifest(stack, 'hello', fixture.commits.a);
    await sleep(TTL_SECONDS * 1000 + 500);
    const misses = await metricValue(stack.apiMetricsUrl, 'nixyard_manifest_requests_total{cache="miss"}');
    const hits = await metricValue(stack.apiMetricsUrl, 'nixyard_manifest_requests_total{cache="hit"}');
    assert.equal((await manifest(stack, 'hello', fixture.commits.a)).status, 200);
    assert.equal(await metricValue(stack.apiMetricsUrl, 'nixyard_manifest_requests_total{cache="miss"}'), misses, 'no job');
    assert.equal(await metricValue(stack.apiMetricsUrl, 'nixyard_manifest_requests_total{cache="hit"}'), hits + 1);
  });

  test('latest follows the branch, re-resolved only after the TTL', async () => {
    await sleep(TTL_SECONDS * 1000 + 500); // start from a fresh resolution
    const before = await manifest(stack, 'hello', 'latest');
    const d = fixture.advanceMain('d');
    assert.equal((await manifest(stack, 'hello', 'latest')).digest, before.digest, 'within the TTL: the old head');
    await sleep(TTL_SECONDS * 1000 + 500);
    const after = await manifest(stack, 'hello', 'latest');
    assert.notEqual(after.digest, before.digest);
    assert.equal(after.digest, (await manifest(stack, 'hello', d)).digest);
  });
});

describe('a local path as the package source', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ env: { NIXERY_MANIFEST_TTL: String(TTL_SECONDS) } });
  });
  after(async () => {
    await stack?.stop();
  });

  test('its manifest is served without a job within the TTL and rebuilt after it', async () => {
    const misses = () => metricValue(stack.apiMetricsUrl, 'nixyard_manifest_requests_total{cache="miss"}');
    const nixBuilds = () => metricValue(stack.workerMetricsUrl, 'nixyard_builds_total{result="started"}');
    const first = await manifest(stack, 'hello', 'latest');
    assert.equal(first.status, 200);
    const [missesBefore, buildsBefore] = [await misses(), await nixBuilds()];
    assert.equal((await manifest(stack, 'hello', 'latest')).digest, first.digest);
    assert.deepEqual([await misses(), await nixBuilds()], [missesBefore, buildsBefore], 'within the TTL: no job, no Nix');

    await sleep(TTL_SECONDS * 1000 + 500);
    const refreshed = await manifest(stack, 'hello', 'latest');
    assert.deepEqual([await misses(), await nixBuilds()], [missesBefore + 1, buildsBefore + 1], 'after the TTL: one job re-evaluates the path');
    assert.equal(refreshed.digest, first.digest, 'the same packages give the same image');
  });

  test('a path has only the tag latest', async () => {
    const res = await manifest(stack, 'hello', 'v1');
    assert.equal(res.status, 404);
  });
});
