// The status page at `/` end to end: the real API and worker processes with a private Redis, a
// package set with one package whose build fails with hostile output, and the page rendered by
// Debian's headless Chromium: the failure is shown, its log is text (never markup), and a
// screenshot lands in test-artifacts/status-page.png for a human to look at.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { BUNDLED_SET, REPO_ROOT } from '../helpers/bundled-set.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startStack, type TestStack } from '../helpers/stack.js';

const HOSTILE_LINE = '<script>alert(1)</script> compile error: the thing is broken';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'status-page.png');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The package set under test: the bundled one plus `broken`, whose builder prints HOSTILE_LINE and fails. */
function writePackageSet(dir: string): void {
  const nixString = JSON.stringify(`echo '${HOSTILE_LINE}' >&2; exit 1`);
  writeFileSync(
    join(dir, 'default.nix'),
    `{ system ? builtins.currentSystem, ... }@args:
(import ${BUNDLED_SET} args) // {
  broken = derivation {
    name = "broken";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" ${nixString} ];
  };
}
`,
  );
}

/** Debian's chromium; a missing one fails the test (it is a test dependency, not optional). */
function chromiumBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'chromium is not installed, and the status page end-to-end test needs it: run ' +
        '`bash scripts/install-system-packages.sh --test` (or `apt-get install -y chromium`)',
    );
  }
}

/** Headless Chromium with a fresh profile, no network but the page, and its output. */
function chromium(args: string[], profileDir: string): Promise<string> {
  const binary = chromiumBinary();
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  const flags = [
    '--headless',
    '--no-sandbox', // root in a container: Chromium's sandbox cannot start
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profileDir}`,
  ];
  return new Promise((resolve, reject) => {
    execFile(binary, [...flags, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`chromium ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

describe('the status page', () => {
  const work = tempDir('e2e-status-page');
  const pkgs = join(work.path, 'pkgs');
  let stack: TestStack;
  let page: string;

  before(async () => {
    mkdirSync(pkgs);
    writePackageSet(pkgs);
    stack = await startStack({ env: { NIXERY_PKGS_PATH: pkgs } });
    page = `http://${stack.registry}/`;
    // startStack returns once the worker serves metrics, which it does a moment before its first
    // heartbeat; until then a pull is refused (503). The page shows when the worker is live.
    await pageShows(/<tr data-system="x86_64-linux">[^\n]*<td class="workers">1<\/td>/, 'the worker as live');
  });

  /** Polls the page until it matches: it reuses what it read for a moment (its snapshot), so news shows a little late. */
  async function pageShows(pattern: RegExp, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!pattern.test(await (await fetch(page, { signal: AbortSignal.timeout(15_000) })).text())) {
      if (Date.now() > deadline) throw new Error(`the status page did not show ${what} within 30 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  after(async () => {
    await stack?.stop();
    work.cleanup();
  });

  test('hello builds; broken fails its build (500 UNKNOWN)', async () => {
    const hello = await fetch(`${page}v2/hello/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    assert.equal(hello.status, 200, await hello.clone().text());
    const broken = await fetch(`${page}v2/broken/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    const body = (await broken.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(broken.status, 500, JSON.stringify(body));
    assert.equal(body.errors[0]?.code, 'UNKNOWN');
    await pageShows(/<code class="image">broken<\/code>/, 'the failed build');
  });

  test('GET / is a 200 HTML page with a strict Content-Security-Policy', async () => {
    const res = await fetch(page);
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('content-security-policy'), "default-src 'none'; style-src 'unsafe-inline'");
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(html.includes(`docker pull ${stack.registry}/shell/git:latest`), 'pull commands name the Host the client used');
    assert.doesNotMatch(html, /<script/i);
  });

  test('headless Chromium shows the failed build, its log as text, the workers and the source', async () => {
    const dom = await chromium(['--dump-dom', page], join(work.path, 'chromium-dom'));
    assert.match(dom, /<h1>Nixyard<\/h1>/, `not the status page:\n${dom.slice(0, 2000)}`);

    // The failed build, with its code and its log line; the script tag only as escaped text.
    const failure = /<li class="failure">(?:(?!<\/li>).)*<code class="image">broken<\/code>(?:(?!<\/li>)[\s\S])*<\/li>/.exec(dom)?.[0];
    assert.ok(failure, `no failed build of "broken" on the page:\n${dom}`);
    assert.match(failure, /<span class="code">BUILD_FAILED<\/span>/);
    assert.match(failure, /<code class="system">x86_64-linux<\/code>/);
    assert.match(failure, /<details(?: open(?:="")?)?><summary>log tail \(\d+ lines?\)<\/summary><pre>[\s\S]*&lt;script&gt;alert\(1\)&lt;\/script&gt; compile error: the thing is broken/);
    assert.doesNotMatch(dom, /<script/i, 'no <script> element made it into the DOM');

    // One live worker for the served system, and the source this stack runs on.
    assert.match(dom, /<tr data-system="x86_64-linux"><th scope="row"><code>x86_64-linux<\/code><\/th><td class="workers">1<\/td>/);
    assert.ok(dom.includes(`<dt>path</dt><dd><code>${pkgs}</code></dd>`), 'the package source');
    assert.match(dom, /<dd class="revision"><code>unversioned<\/code>/);
  });

  test('a screenshot at 1280x1600 goes to test-artifacts/status-page.png', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    rmSync(SCREENSHOT, { force: true });
    await chromium([`--screenshot=${SCREENSHOT}`, '--window-size=1280,1600', page], join(work.path, 'chromium-shot'));
    const png = readFileSync(SCREENSHOT);
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'a PNG file');
    assert.equal(png.readUInt32BE(16), 1280, 'width');
    assert.equal(png.readUInt32BE(20), 1600, 'height');
    assert.ok(statSync(SCREENSHOT).size > 20 * 1024, `a real rendering, not a blank page (${png.length} bytes)`);
  });

  // Last: it takes Redis away from the stack.
  test('with Redis down the page still renders, showing what it could not read as unavailable', async () => {
    await stack.redis.stop();
    await pageShows(/<td class="workers">\?<\/td>/, 'the workers as unreadable'); // past the snapshot read while Redis was up
    const started = Date.now();
    const res = await fetch(page, { signal: AbortSignal.timeout(15_000) });
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started < 10_000, `answered in ${Date.now() - started} ms`);
    assert.match(html, /<td class="workers">\?<\/td>/);
    assert.match(html, /<h2>Recent failed builds<\/h2>\n<p class="unavailable">unavailable/);
    assert.match(html, /<dd class="revision"><code>unversioned<\/code>/, 'the path source needs no Redis');
  });
});
