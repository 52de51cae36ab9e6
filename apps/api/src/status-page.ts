// The front page at `/`, after Nixery's: what this registry is, how to pull from it, and what the
// farm is doing (package source and revision, systems, live workers, queue depth, recent failed
// builds with their log tails). Built for people, so it must never fail: each part read from Redis
// or the source is gathered on its own, bounded by a timeout, and shown as "unavailable" when it
// cannot be read; the page is still a 200.
//
// Gathering (`gatherStatus`) and rendering (`renderStatusPage`, a pure function of plain data)
// are separate, so the HTML is tested without Redis. Everything dynamic on the page is untrusted
// (the Host header, build logs, failure messages, paths) and goes through `escapeHtml`; the
// Content-Security-Policy forbids scripts and every other fetch as a second line of defence.

import type { RequestHandler } from 'express';
import { SHELL_PACKAGES, canonicalImageName, redactUrl, type PackageSource, type QueueState, type System } from '@nixyard/core';
import type { FarmStatus, RecentFailure } from './farm-status.js';
import type { ResolvedTag, SourceResolver } from './source-resolver.js';

export interface StatusPageDeps {
  farm: Pick<FarmStatus, 'queueDepth' | 'liveWorkers' | 'recentFailures'>;
  resolver: Pick<SourceResolver, 'source' | 'resolve'>;
  systems: readonly System[];
  indexSystems: readonly System[] | undefined;
  /** How long one read (Redis, git) may take before its part shows as unavailable. Default 2000. */
  readTimeoutMs?: number;
}

/** Failed builds listed on the page. */
export const FAILURES_SHOWN = 20;
/** The last characters of a log tail shown; the whole tail stays in the job (a day, see build-queue). */
export const LOG_TAIL_SHOWN_CHARS = 8 * 1024;
/** Snapshots are reused this long, so many open pages refreshing do not each read Redis. */
export const SNAPSHOT_MS = 2000;

export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'";

/** A part of the page that was read, or could not be. */
export type Readout<T> = { ok: true; value: T } | { ok: false; error: string };

export interface QueueRow {
  system: System;
  state: QueueState;
  count: number;
}

export interface StatusPageData {
  /** The validated Host the client used, or undefined when it was absent or not a plain host[:port]. */
  host: string | undefined;
  source: PackageSource;
  revision: Readout<ResolvedTag>;
  systems: readonly System[];
  indexSystems: readonly System[] | undefined;
  workers: Readout<Array<{ system: System; count: number }>>;
  queue: Readout<QueueRow[]>;
  failures: Readout<RecentFailure[]>;
  generatedAt: Date;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

// A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port. Nothing else
// (no userinfo, path, spaces or quotes) ever reaches the example commands.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** The Host header if it is a plain `host[:port]` (lower-cased), else undefined. */
export function validHost(header: string | undefined): string | undefined {
  if (!header || header.length > 260 || !HOST.test(header)) return undefined;
  const port = /:([0-9]{1,5})$/.exec(header)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return undefined;
  return header.toLowerCase();
}

/** What a client pulls to get this image again (a failed job whose data did not parse has no packages). */
function imageNameOf(system: System, packages: readonly string[]): string {
  return packages.length > 0 ? canonicalImageName({ system, packages: [...packages] }) : '(unknown)';
}

// Colour and cursor escape sequences make a terminal log unreadable as text.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

/** The end of a log tail, without terminal escapes, at most LOG_TAIL_SHOWN_CHARS. */
export function shownLogTail(logTail: string): { text: string; cut: boolean } {
  const clean = logTail.replace(ANSI, '');
  if (clean.length <= LOG_TAIL_SHOWN_CHARS) return { text: clean, cut: false };
  const end = clean.slice(clean.length - LOG_TAIL_SHOWN_CHARS);
  const newline = end.indexOf('\n');
  return { text: newline >= 0 && newline < 200 ? end.slice(newline + 1) : end, cut: true };
}

const UNAVAILABLE = (error: string, what = '') =>
  `<p class="unavailable">${what ? `${escapeHtml(what)}: ` : ''}unavailable <span class="why">(${escapeHtml(error)})</span></p>`;

function sourceRows(source: PackageSource): Array<[string, string]> {
  switch (source.kind) {
    case 'path':
      return [['kind', 'local path (NIXERY_PKGS_PATH)'], ['path', source.path]];
    case 'channel':
      return [['kind', 'nixpkgs channel (NIXERY_CHANNEL)'], ['channel', source.channel]];
    case 'git':
      return [
        ['kind', 'git repository (NIXERY_PKGS_REPO)'],
        ['url', redactUrl(source.url)],
        ...(source.ref ? ([['ref', source.ref]] as Array<[string, string]>) : []),
      ];
  }
}

function revisionText(revision: Readout<ResolvedTag>): string {
  if (!revision.ok) return UNAVAILABLE(revision.error);
  const kind = revision.value.immutable ? 'pinned' : 'moving: manifests are rebuilt after NIXERY_MANIFEST_TTL';
  return `<code>${escapeHtml(revision.value.revision)}</code> <span class="muted">(${escapeHtml(kind)})</span>`;
}

function farmTable(data: StatusPageData): string {
  const workers = data.workers.ok ? new Map(data.workers.value.map((w) => [w.system, w.count])) : undefined;
  const depth = (system: System, states: readonly QueueState[]): string => {
    if (!data.queue.ok) return '?';
    return String(data.queue.value.filter((r) => r.system === system && states.includes(r.state)).reduce((n, r) => n + r.count, 0));
  };
  const rows = data.systems.map((system) => {
    const count = workers?.get(system);
    const workerCell =
      count === undefined ? '?' : count === 0 ? `<span class="bad">0</span>` : escapeHtml(count);
    return (
      `<tr data-system="${escapeHtml(system)}"><th scope="row"><code>${escapeHtml(system)}</code></th>` +
      `<td class="workers">${workerCell}</td>` +
      `<td class="waiting">${depth(system, ['waiting', 'prioritized'])}</td>` +
      `<td class="active">${depth(system, ['active'])}</td>` +
      `<td class="delayed">${depth(system, ['delayed'])}</td>` +
      `<td class="failed">${depth(system, ['failed'])}</td></tr>`
    );
  });
  const notes: string[] = [];
  if (!data.workers.ok) notes.push(UNAVAILABLE(data.workers.error, 'Live workers'));
  if (!data.queue.ok) notes.push(UNAVAILABLE(data.queue.error, 'Queue depth'));
  if (workers && data.systems.some((s) => workers.get(s) === 0)) {
    notes.push('<p class="muted">A system without a live worker cannot build: pulls of its new images fail at once (503).</p>');
  }
  return (
    '<div class="scroll"><table class="farm"><thead><tr><th>system</th><th>live workers</th><th>waiting</th><th>active</th><th>delayed</th><th>failed</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table></div>${notes.join('')}`
  );
}

function failureDetail(failure: RecentFailure['failure'], open: boolean): string {
  switch (failure.code) {
    case 'UNKNOWN_PACKAGES':
      return `<p>unknown: ${failure.packages.map((p) => `<code>${escapeHtml(p)}</code>`).join(', ')}</p>`;
    case 'BUILD_FAILED':
    case 'TIMEOUT': {
      if (failure.logTail.length === 0) return '';
      const tail = shownLogTail(failure.logTail);
      const lines = tail.text.replace(/\n$/, '').split('\n').length;
      return (
        `<details${open ? ' open' : ''}><summary>log tail (${lines} line${lines === 1 ? '' : 's'}${tail.cut ? ', earlier output cut' : ''})</summary>` +
        `<pre>${escapeHtml(tail.text)}</pre></details>`
      );
    }
    case 'STORAGE':
    case 'WORKER_CRASHED':
      return '';
  }
}

function failuresSection(failures: Readout<RecentFailure[]>): string {
  if (!failures.ok) return UNAVAILABLE(failures.error);
  if (failures.value.length === 0) return '<p class="muted">No failed builds. Failed jobs are kept for a day.</p>';
  // The newest failure's log is open: it is the one somebody came to look at.
  return (
    '<ol class="failures">' +
    failures.value
      .map((f, i) => {
        const time = Number.isNaN(f.failedAt.getTime()) ? 'unknown time' : f.failedAt.toISOString();
        const timeout = f.failure.code === 'TIMEOUT' ? ` after ${escapeHtml(f.failure.seconds)}s` : '';
        return (
          `<li class="failure"><div class="head"><time datetime="${escapeHtml(time)}">${escapeHtml(time.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</time> ` +
          `<code class="system">${escapeHtml(f.system)}</code> <code class="image">${escapeHtml(imageNameOf(f.system, f.packages))}</code> ` +
          `<span class="code">${escapeHtml(f.failure.code)}</span>${timeout}</div>` +
          `<p class="message">${escapeHtml(f.failure.message)}</p>${failureDetail(f.failure, i === 0)}</li>`
        );
      })
      .join('') +
    '</ol>'
  );
}

const STYLE = `
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1d2125;background:#fdfdfc}
h1{margin:.2rem 0;font-size:1.8rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;font-size:1.25rem}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.9em}
pre{background:#f1f3f5;padding:.6rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all;max-height:30rem;overflow-y:auto}
.cmd{background:#1d2125;color:#e9ecef;white-space:pre;word-break:normal}
.scroll{overflow-x:auto}table{border-collapse:collapse;min-width:100%}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e5e5e5;text-align:left}td{font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
.muted,.why{color:#666}.unavailable{color:#a15c00;margin:.3rem 0}.bad{color:#b00020;font-weight:600}
.failures{list-style:none;padding:0}.failure{border-left:3px solid #b00020;padding:.2rem .8rem;margin:.8rem 0;background:#fff}
.failure .head{display:flex;flex-wrap:wrap;gap:.2rem .8rem;align-items:baseline}.failure .code{color:#b00020;font-weight:600}
.failure .message{margin:.3rem 0;overflow-wrap:anywhere}.image{font-weight:600;overflow-wrap:anywhere}
footer{margin-top:2rem;color:#666;font-size:.85rem}
`.trim();

/** The whole page as HTML. Pure: the same data gives the same bytes. */
export function renderStatusPage(data: StatusPageData): string {
  const host = data.host ?? '<registry-host>';
  const shell = SHELL_PACKAGES.join(' ');
  const index = data.indexSystems?.length
    ? `on: every tag is a multi-architecture index over ${data.indexSystems.map((s) => `<code>${escapeHtml(s)}</code>`).join(', ')}`
    : 'off: every tag is a single-system image';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="15">
<title>Nixyard</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Nixyard</h1>
<p>An on-demand container registry for <a href="https://nixos.org">Nix</a>. The name of an image is the list of
packages it holds: each path component is a nixpkgs attribute path (<code>git</code>,
<code>python3Packages.numpy</code>), and the image is built the first time somebody pulls it, then served from
storage. Two meta-packages: <code>shell</code> adds <code>${escapeHtml(shell)}</code>, and <code>arm64</code>
builds for <code>aarch64-linux</code>. Components are sorted and de-duplicated, so <code>git/htop</code> and
<code>htop/git</code> are the same image.</p>
</header>
<main>
<h2>Pull</h2>
<pre class="cmd">docker pull ${escapeHtml(host)}/shell/git:latest
skopeo copy docker://${escapeHtml(host)}/hello:latest oci:hello:latest</pre>
<p class="muted">Served over plain HTTP? Add <code>--src-tls-verify=false</code> to skopeo, or list the registry under
Docker's <code>insecure-registries</code>. The tag picks the package source's revision: <code>latest</code> is its default.</p>

<h2>Package source</h2>
<dl class="source">
${sourceRows(data.source)
  .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd><code>${escapeHtml(v)}</code></dd>`)
  .join('\n')}
<dt>revision of latest</dt><dd class="revision">${revisionText(data.revision)}</dd>
</dl>

<h2>Build farm</h2>
<p>Systems served: ${data.systems.map((s) => `<code>${escapeHtml(s)}</code>`).join(', ')}. Multi-architecture index: ${index}.</p>
${farmTable(data)}

<h2>Recent failed builds</h2>
${failuresSection(data.failures)}
</main>
<footer>Generated <time datetime="${escapeHtml(data.generatedAt.toISOString())}">${escapeHtml(data.generatedAt.toISOString())}</time>; refreshes every 15 seconds.</footer>
</body>
</html>
`;
}

/** Settles within `ms`: the value, or the reason it could not be read. Never rejects. */
async function readout<T>(read: () => Promise<T>, ms: number): Promise<Readout<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readout<T>>((done) => {
    timer = setTimeout(() => done({ ok: false, error: `no answer within ${ms} ms` }), ms);
  });
  const attempt = Promise.resolve()
    .then(read)
    .then(
      (value): Readout<T> => ({ ok: true, value }),
      (err: unknown): Readout<T> => ({ ok: false, error: (err instanceof Error ? err.message : String(err)).slice(0, 200) || 'error' }),
    );
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export type StatusSnapshot = Omit<StatusPageData, 'host'>;

/** Reads everything the page shows; each part on its own, none can fail the whole. */
export async function gatherStatus(deps: StatusPageDeps): Promise<StatusSnapshot> {
  const ms = deps.readTimeoutMs ?? 2000;
  const [revision, workers, queue, failures] = await Promise.all([
    readout(() => deps.resolver.resolve('latest'), ms),
    readout(() => deps.farm.liveWorkers(), ms),
    readout(() => deps.farm.queueDepth(), ms),
    readout(() => deps.farm.recentFailures(FAILURES_SHOWN), ms),
  ]);
  return {
    source: deps.resolver.source,
    revision,
    systems: deps.systems,
    indexSystems: deps.indexSystems,
    workers,
    queue,
    failures,
    generatedAt: new Date(),
  };
}

/** GET / : the status page. */
export function statusPage(deps: StatusPageDeps): RequestHandler {
  let last: { at: number; snapshot: Promise<StatusSnapshot> } | undefined;
  const snapshot = (): Promise<StatusSnapshot> => {
    const now = Date.now();
    if (!last || now - last.at > SNAPSHOT_MS) last = { at: now, snapshot: gatherStatus(deps) };
    return last.snapshot;
  };
  return async (req, res) => {
    const html = renderStatusPage({ ...(await snapshot()), host: validHost(req.get('host')) });
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).send(html);
  };
}
