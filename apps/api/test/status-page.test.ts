import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import type { RecentFailure } from '../src/farm-status.js';
import {
  CONTENT_SECURITY_POLICY,
  LOG_TAIL_SHOWN_CHARS,
  escapeHtml,
  renderStatusPage,
  shownLogTail,
  statusPage,
  validHost,
  type StatusPageData,
  type StatusPageDeps,
} from '../src/status-page.js';

const HOSTILE = '<script>alert(1)</script>';

function failure(overrides: Partial<RecentFailure> = {}): RecentFailure {
  return {
    jobId: 'a'.repeat(64),
    system: 'x86_64-linux',
    packages: ['broken', 'hello'],
    requestId: 'req-1',
    failedAt: new Date('2025-03-04T05:06:07.890Z'),
    failure: { code: 'BUILD_FAILED', message: 'nix-build failed', logTail: `line one\n${HOSTILE} compile error\n` },
    ...overrides,
  };
}

function data(overrides: Partial<StatusPageData> = {}): StatusPageData {
  return {
    host: 'registry.example:8080',
    source: { kind: 'path', path: '/srv/pkgs' },
    revision: { ok: true, value: { revision: 'unversioned', immutable: false } },
    systems: ['x86_64-linux', 'aarch64-linux'],
    indexSystems: undefined,
    workers: { ok: true, value: [{ system: 'x86_64-linux', count: 3 }, { system: 'aarch64-linux', count: 0 }] },
    queue: {
      ok: true,
      value: [
        { system: 'x86_64-linux', state: 'waiting', count: 4 },
        { system: 'x86_64-linux', state: 'prioritized', count: 1 },
        { system: 'x86_64-linux', state: 'active', count: 2 },
        { system: 'x86_64-linux', state: 'delayed', count: 0 },
        { system: 'x86_64-linux', state: 'failed', count: 7 },
        { system: 'x86_64-linux', state: 'completed', count: 99 },
      ],
    },
    failures: { ok: true, value: [failure()] },
    generatedAt: new Date('2025-03-04T06:00:00.000Z'),
    ...overrides,
  };
}

/** The text of a farm-table cell, e.g. cell(html, 'x86_64-linux', 'workers'). */
function cell(html: string, system: string, column: string): string | undefined {
  const row = new RegExp(`<tr data-system="${system}">(.*?)</tr>`).exec(html)?.[1];
  return row && new RegExp(`<td class="${column}">(.*?)</td>`).exec(row)?.[1];
}

describe('escapeHtml', () => {
  test('escapes the five characters that matter', () => {
    assert.equal(escapeHtml(`& < > " '`), '&amp; &lt; &gt; &quot; &#39;');
  });
  test('a script tag becomes text', () => {
    assert.equal(escapeHtml(HOSTILE), '&lt;script&gt;alert(1)&lt;/script&gt;');
  });
  test('an attribute break-out stays inside the attribute', () => {
    const out = escapeHtml(`"><img src=x onerror=alert(1)>`);
    assert.equal(out, '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    assert.doesNotMatch(out, /[<>"']/);
  });
  test("single quotes too (for attributes quoted with ')", () => {
    assert.equal(escapeHtml(`' onmouseover='x`), '&#39; onmouseover=&#39;x');
  });
  test('an existing entity is escaped again, not trusted', () => {
    assert.equal(escapeHtml('&amp;'), '&amp;amp;');
    assert.equal(escapeHtml('&lt;script&gt;'), '&amp;lt;script&amp;gt;');
  });
  test('non-strings are stringified; plain text is unchanged', () => {
    assert.equal(escapeHtml(42), '42');
    assert.equal(escapeHtml('hello/world ünïcode'), 'hello/world ünïcode');
  });
});

describe('validHost', () => {
  test('accepts host, host:port, IPv4 and bracketed IPv6, lower-cased', () => {
    assert.equal(validHost('registry.example'), 'registry.example');
    assert.equal(validHost('Registry.Example:8080'), 'registry.example:8080');
    assert.equal(validHost('127.0.0.1:5000'), '127.0.0.1:5000');
    assert.equal(validHost('[::1]:8080'), '[::1]:8080');
    assert.equal(validHost('localhost'), 'localhost');
  });
  test('refuses anything else', () => {
    for (const bad of [
      undefined,
      '',
      `"><script>alert(1)</script>`,
      'evil.example/path',
      'user@evil.example',
      'a b',
      'host:99999',
      'host:0',
      'host:',
      '-leading.example',
      'x'.repeat(300),
      'evil.example\r\nX-Injected: 1',
    ]) {
      assert.equal(validHost(bad), undefined, String(bad));
    }
  });
});

describe('helpers', () => {
  test('a failure whose job data did not parse shows as (unknown)', () => {
    const html = renderStatusPage(data({ failures: { ok: true, value: [failure({ packages: [] })] } }));
    assert.ok(html.includes('<code class="image">(unknown)</code>'), html);
  });
  test('shownLogTail strips terminal escapes and keeps the end of long logs', () => {
    assert.deepEqual(shownLogTail('\x1b[31;1merror\x1b[0m: x\n'), { text: 'error: x\n', cut: false });
    const long = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n');
    const shown = shownLogTail(long);
    assert.equal(shown.cut, true);
    assert.ok(shown.text.length <= LOG_TAIL_SHOWN_CHARS);
    assert.ok(shown.text.endsWith('line 1999'));
    assert.match(shown.text, /^line \d+\n/, 'starts at a whole line');
  });
});

describe('renderStatusPage', () => {
  test('is an HTML5 page, readable on a phone, refreshing, without scripts', () => {
    const html = renderStatusPage(data());
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(html, /<meta http-equiv="refresh" content="15">/);
    assert.doesNotMatch(html, /<script/i);
  });

  test('explains the registry and shows pull commands for the request host', () => {
    const html = renderStatusPage(data());
    assert.match(html, /on-demand container registry for <a href="https:\/\/nixos.org">Nix<\/a>/);
    assert.match(html, /<code>shell<\/code> adds <code>bashInteractive coreutils moreutils nano<\/code>/);
    assert.match(html, /<code>arm64<\/code>\nbuilds for <code>aarch64-linux<\/code>/);
    assert.ok(html.includes('docker pull registry.example:8080/shell/git:latest'));
    assert.ok(html.includes('skopeo copy docker://registry.example:8080/hello:latest oci:hello:latest'));
  });

  test('without a valid host, the commands show a placeholder', () => {
    const html = renderStatusPage(data({ host: undefined }));
    assert.ok(html.includes('docker pull &lt;registry-host&gt;/shell/git:latest'));
  });

  test('shows the source and the revision of latest, by kind', () => {
    let html = renderStatusPage(data());
    assert.match(html, /<dt>kind<\/dt><dd><code>local path \(NIXERY_PKGS_PATH\)<\/code><\/dd>/);
    assert.match(html, /<dt>path<\/dt><dd><code>\/srv\/pkgs<\/code><\/dd>/);
    assert.match(html, /<dd class="revision"><code>unversioned<\/code> <span class="muted">\(moving/);

    html = renderStatusPage(data({ source: { kind: 'channel', channel: 'nixos-24.05' }, revision: { ok: true, value: { revision: 'nixos-24.05', immutable: false } } }));
    assert.match(html, /<dt>channel<\/dt><dd><code>nixos-24.05<\/code><\/dd>/);

    const commit = '0123456789abcdef0123456789abcdef01234567';
    html = renderStatusPage(
      data({
        source: { kind: 'git', url: 'https://bot:t0ken@git.example/nixpkgs.git', ref: 'release' },
        revision: { ok: true, value: { revision: commit, immutable: true } },
      }),
    );
    assert.match(html, /<dt>url<\/dt><dd><code>https:\/\/git.example\/nixpkgs.git<\/code><\/dd>/);
    assert.match(html, /<dt>ref<\/dt><dd><code>release<\/code><\/dd>/);
    assert.ok(html.includes(`<code>${commit}</code> <span class="muted">(pinned)</span>`));
    assert.doesNotMatch(html, /t0ken/);
  });

  test('a revision that could not be resolved is "unavailable", the rest of the page is there', () => {
    const html = renderStatusPage(data({ revision: { ok: false, error: `git ls-remote failed: ${HOSTILE}` } }));
    assert.match(html, /<dd class="revision"><p class="unavailable">unavailable <span class="why">\(git ls-remote failed: &lt;script&gt;/);
    assert.ok(html.includes('<h2>Recent failed builds</h2>'));
  });

  test('systems, index mode, live workers and queue depth per system', () => {
    const html = renderStatusPage(data());
    assert.match(html, /Systems served: <code>x86_64-linux<\/code>, <code>aarch64-linux<\/code>\. Multi-architecture index: off/);
    assert.equal(cell(html, 'x86_64-linux', 'workers'), '3');
    assert.equal(cell(html, 'x86_64-linux', 'waiting'), '5', 'waiting counts prioritized jobs too');
    assert.equal(cell(html, 'x86_64-linux', 'active'), '2');
    assert.equal(cell(html, 'x86_64-linux', 'delayed'), '0');
    assert.equal(cell(html, 'x86_64-linux', 'failed'), '7');
    assert.equal(cell(html, 'aarch64-linux', 'workers'), '<span class="bad">0</span>');
    assert.equal(cell(html, 'aarch64-linux', 'waiting'), '0');
    assert.match(html, /A system without a live worker cannot build/);

    const indexed = renderStatusPage(data({ indexSystems: ['x86_64-linux', 'aarch64-linux'] }));
    assert.match(indexed, /Multi-architecture index: on: every tag is a multi-architecture index over <code>x86_64-linux<\/code>, <code>aarch64-linux<\/code>/);
  });

  test('unreadable farm state shows as unavailable, per part', () => {
    const html = renderStatusPage(
      data({ workers: { ok: false, error: 'no answer within 2000 ms' }, queue: { ok: false, error: 'Connection is closed.' }, failures: { ok: false, error: 'ECONNREFUSED' } }),
    );
    assert.equal(cell(html, 'x86_64-linux', 'workers'), '?');
    assert.equal(cell(html, 'x86_64-linux', 'waiting'), '?');
    assert.ok(html.includes('<p class="unavailable">Live workers: unavailable <span class="why">(no answer within 2000 ms)</span></p>'));
    assert.ok(html.includes('<p class="unavailable">Queue depth: unavailable <span class="why">(Connection is closed.)</span></p>'));
    assert.match(html, /<h2>Recent failed builds<\/h2>\n<p class="unavailable">unavailable <span class="why">\(ECONNREFUSED\)/);
  });

  test('a failed build: time, system, image name, code, message, log tail in <details>', () => {
    const html = renderStatusPage(data());
    assert.ok(html.includes('<time datetime="2025-03-04T05:06:07.890Z">2025-03-04 05:06:07 UTC</time>'));
    assert.ok(html.includes('<code class="system">x86_64-linux</code> <code class="image">broken/hello</code> <span class="code">BUILD_FAILED</span>'));
    assert.ok(html.includes('<p class="message">nix-build failed</p>'));
    assert.ok(html.includes('<details open><summary>log tail (2 lines)</summary><pre>line one\n&lt;script&gt;alert(1)&lt;/script&gt; compile error\n</pre></details>'));
  });

  test('only the newest failure\'s log is open', () => {
    const html = renderStatusPage(data({ failures: { ok: true, value: [failure(), failure(), failure()] } }));
    assert.equal(html.match(/<details open>/g)?.length, 1);
    assert.equal(html.match(/<details>/g)?.length, 2);
    assert.ok(html.indexOf('<details open>') < html.indexOf('<details>'));
  });

  test('other failure kinds', () => {
    const html = renderStatusPage(
      data({
        failures: {
          ok: true,
          value: [
            failure({ system: 'aarch64-linux', packages: ['nope'], failure: { code: 'UNKNOWN_PACKAGES', message: 'unknown packages: nope', packages: ['nope', `"><img src=x onerror=alert(1)>`] } }),
            failure({ failure: { code: 'TIMEOUT', message: 'timed out', seconds: 600, logTail: 'building...' } }),
            failure({ failure: { code: 'STORAGE', message: 'disk full' } }),
          ],
        },
      }),
    );
    assert.ok(html.includes('<code class="image">arm64/nope</code> <span class="code">UNKNOWN_PACKAGES</span>'));
    assert.ok(html.includes('<p>unknown: <code>nope</code>, <code>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</code></p>'));
    assert.ok(html.includes('<span class="code">TIMEOUT</span> after 600s'));
    assert.ok(html.includes('<summary>log tail (1 line)</summary><pre>building...</pre>'));
    assert.ok(html.includes('<span class="code">STORAGE</span></div><p class="message">disk full</p></li>'));
  });

  test('no failures', () => {
    assert.match(renderStatusPage(data({ failures: { ok: true, value: [] } })), /No failed builds\./);
  });

  test('every dynamic string is escaped: no hostile markup survives anywhere', () => {
    const evil = `${HOSTILE}"><img src=x onerror=alert(2)>'&amp;`;
    const html = renderStatusPage(
      data({
        host: undefined,
        source: { kind: 'path', path: `/srv/${evil}` },
        revision: { ok: true, value: { revision: evil, immutable: false } },
        workers: { ok: false, error: evil },
        queue: { ok: false, error: evil },
        failures: {
          ok: true,
          value: [
            failure({
              packages: [evil],
              failure: { code: 'BUILD_FAILED', message: evil, logTail: `${evil}\n</pre></details>${HOSTILE}` },
            }),
          ],
        },
      }),
    );
    assert.doesNotMatch(html, /<script|<img|onerror=alert\(2\)>|<\/pre><\/details><script/i);
    // Each occurrence is escaped exactly once: the literal "&amp;" shows as "&amp;amp;".
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&#39;&amp;amp;'));
    // The log tail cannot close its <pre>: exactly one </pre> per tail, plus the pull commands'.
    assert.equal(html.match(/<\/pre>/g)?.length, 2);
  });

  test('is pure: the same data gives the same page', () => {
    assert.equal(renderStatusPage(data()), renderStatusPage(data()));
  });
});

describe('statusPage handler', () => {
  const deps: StatusPageDeps = {
    farm: {
      liveWorkers: async () => [{ system: 'x86_64-linux', count: 2 }],
      // Redis down: ioredis queues commands forever (maxRetriesPerRequest: null).
      queueDepth: () => new Promise(() => {}),
      recentFailures: async () => {
        throw new Error('Connection is closed.');
      },
    },
    resolver: {
      source: { kind: 'path', path: '/srv/pkgs' },
      resolve: async () => {
        throw new Error('boom');
      },
    },
    systems: ['x86_64-linux'],
    indexSystems: undefined,
    readTimeoutMs: 200,
  };
  let base: string;
  let close: () => void;
  before(async () => {
    const app = express();
    app.get('/', statusPage(deps));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  after(() => close());

  test('Redis and the source unreachable: still a 200 page, within the read timeout, with the security headers', async () => {
    const started = Date.now();
    const res = await fetch(`${base}/`);
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started < 2000, 'bounded by readTimeoutMs');
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    assert.equal(CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'");
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(cell(html, 'x86_64-linux', 'workers'), '2');
    assert.equal(cell(html, 'x86_64-linux', 'waiting'), '?');
    assert.ok(html.includes('<p class="unavailable">Queue depth: unavailable <span class="why">(no answer within 200 ms)</span>'));
    assert.match(html, /<dd class="revision"><p class="unavailable">unavailable <span class="why">\(boom\)/);
    assert.match(html, /<h2>Recent failed builds<\/h2>\n<p class="unavailable">unavailable <span class="why">\(Connection is closed\.\)/);
  });

  test('the pull commands use a valid Host header, and a placeholder for a hostile one', async () => {
    const { request } = await import('node:http');
    const get = (host: string) =>
      new Promise<string>((resolve, reject) => {
        const req = request(`${base}/`, { headers: { Host: host } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
    assert.ok((await get('Nix.Example:5000')).includes('docker pull nix.example:5000/shell/git:latest'));
    const hostile = await get(`x"><script>alert(1)</script>`);
    assert.ok(hostile.includes('docker pull &lt;registry-host&gt;/shell/git:latest'));
    assert.doesNotMatch(hostile, /<script/);
  });
});
