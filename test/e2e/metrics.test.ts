// Keeps the operations bundle honest. A real stack (private Redis, the real API and worker
// processes, the bundled package set) serves a few pulls; then
//  1. both /metrics scrapes must hold every documented metric, with its type, its label names,
//     and the label values and counts those pulls must have produced;
//  2. every PromQL expression of the Grafana dashboard and of the Prometheus alert rules must
//     parse (Prometheus' own Lezer grammar, @prometheus-io/lezer-promql) and select only metrics,
//     labels and label values that the scrapes really export, with rate() over counters only;
//  3. docker-compose.yml, the Prometheus scrape targets and Grafana's provisioning must agree.
// A panel or rule with a misspelt metric, label or value fails here instead of staying empty.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { REPO_ROOT } from '../../scripts/stack.js';
import { startStack, type TestStack } from '../helpers/stack.js';

const SYSTEM = 'x86_64-linux';
const DASHBOARD = join(REPO_ROOT, 'ops/grafana/dashboards/nixyard.json');
const ALERTS = join(REPO_ROOT, 'ops/prometheus/alerts.yml');
const PROMETHEUS = join(REPO_ROOT, 'ops/prometheus/prometheus.yml');
// Stale after five seconds, so that a third pull of `hello` rebuilds it and finds its layers packed.
const MANIFEST_TTL_SECONDS = 5;

// ---------------------------------------------------------------------------------------------
// The Prometheus text exposition format (version 0.0.4), parsed strictly: a line that is not a
// comment, a HELP/TYPE line or a well-formed sample fails the test.

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

type Exposition = Map<string, Family>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
// As Go's strconv.ParseFloat, which Prometheus uses: Inf and NaN in any case (prom-client writes "Nan").
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)$/i;
const SUFFIXES: Record<MetricType, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''], counter: [''], gauge: [''], untyped: [''] };

function parseExposition(text: string, where: string): Exposition {
  const families: Exposition = new Map();
  const seen = new Set<string>();
  function fail(n: number, line: string, why: string): never {
    assert.fail(`${where} line ${n + 1}: ${why}: ${line}`);
  }
  text.split('\n').forEach((line, n) => {
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
      if (!meta) return; // any other comment
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string?];
      const family = families.get(name) ?? { name, type: 'untyped' as MetricType, help: '', samples: [] };
      families.set(name, family);
      if (kind === 'HELP') family.help = rest.replace(/\\(n|\\)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
      else if (['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) family.type = rest as MetricType;
      else fail(n, line, `unknown metric type "${rest}"`);
      return;
    }
    const name = METRIC_NAME.exec(line)?.[0] ?? fail(n, line, 'no metric name');
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const label = LABEL_NAME.exec(line.slice(i))?.[0] ?? fail(n, line, `bad label name at ${i}`);
        i += label.length;
        if (line.slice(i, i + 2) !== '="') fail(n, line, `expected =" at ${i}`);
        i += 2;
        let value = '';
        for (;;) {
          const c = line[i++];
          if (c === undefined) fail(n, line, 'unterminated label value');
          if (c === '"') break;
          if (c === '\\') {
            const e = line[i++];
            if (e === 'n') value += '\n';
            else if (e === '\\' || e === '"') value += e;
            else fail(n, line, `bad escape \\${e}`);
          } else value += c;
        }
        if (label in labels) fail(n, line, `label ${label} twice`);
        labels[label] = value;
        if (line[i] === ',') i++;
        else if (line[i] !== '}') fail(n, line, `expected , or } at ${i}`);
      }
      i++;
    }
    const [value, timestamp, ...extra] = line.slice(i).trim().split(/\s+/);
    if (!value || !FLOAT.test(value) || extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) fail(n, line, 'bad value or timestamp');
    const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(series)) fail(n, line, 'series repeated');
    seen.add(series);
    const family = familyOfSample(families, name) ?? fail(n, line, 'sample without a # TYPE line for its family');
    family.samples.push({ name, labels, value: floatOf(value) });
  });
  return families;
}

function floatOf(text: string): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (/^[+-]?inf(inity)?$/.test(lower)) return lower.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

/** The family a series name belongs to: itself, or a histogram's / summary's by suffix. */
function familyOfSample(families: Exposition, name: string): Family | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => family.name + suffix === name)) return family;
  }
  return undefined;
}

/** The family, checked for its type and for exactly these label names on every sample. */
function family(exposition: Exposition, name: string, type: MetricType, labelNames: readonly string[]): Family {
  const found = exposition.get(name);
  assert.ok(found, `${name} is exported`);
  assert.equal(found.type, type, `${name} is a ${type}`);
  assert.ok(found.help.length > 0, `${name} has HELP`);
  for (const sample of found.samples) {
    const names = Object.keys(sample.labels).filter((l) => !(l === 'le' && sample.name.endsWith('_bucket')) && !(l === 'quantile' && type === 'summary'));
    assert.deepEqual(names.sort(), [...labelNames].sort(), `label names of ${sample.name}${JSON.stringify(sample.labels)}`);
    if (type === 'histogram' && sample.name.endsWith('_bucket')) assert.ok('le' in sample.labels, `${sample.name} has le`);
  }
  return found;
}

/** The value of the sample with exactly these labels, if there is one. */
function valueOf(f: Family, sampleName: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return f.samples.find((s) => s.name === sampleName && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

/** A family's samples, one a line, for assertion messages. */
function show(f: Family): string {
  return f.samples.map((s) => `\n  ${s.name}${JSON.stringify(s.labels)} ${s.value}`).join('');
}

function labelValues(f: Family, label: string): Set<string> {
  return new Set(f.samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined));
}

/** A histogram's series for one label set: cumulative buckets up to +Inf = _count, and a _sum. Returns _count. */
function histogramCount(f: Family, labels: Record<string, string>): number {
  const buckets = f.samples
    .filter((s) => s.name === `${f.name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), value: s.value }))
    .sort((a, b) => a.le - b.le);
  const where = `${f.name}${JSON.stringify(labels)}`;
  assert.ok(buckets.length > 1, `${where} has _bucket series`);
  assert.equal(buckets.at(-1)!.le, Infinity, `${where} has an le="+Inf" bucket`);
  buckets.forEach((b, i) => assert.ok(i === 0 || b.value >= buckets[i - 1]!.value, `${where} buckets are cumulative`));
  const count = valueOf(f, `${f.name}_count`, labels);
  const sum = valueOf(f, `${f.name}_sum`, labels);
  assert.equal(count, buckets.at(-1)!.value, `${where}: _count equals the +Inf bucket`);
  assert.ok(sum !== undefined && sum >= 0, `${where} has a _sum`);
  return count;
}

// ---------------------------------------------------------------------------------------------
// The metrics this project documents (docs/operations.md), with their label names and the
// values their labels may take; PromQL label matchers are checked against these as well.

interface Spec {
  role: 'api' | 'worker';
  type: MetricType;
  labels: readonly string[];
  values?: Record<string, readonly string[]>;
}

const ROUTES = ['page', 'healthz', 'readyz', 'metrics', 'admin', 'base', 'manifest', 'blob', 'tags', 'other'];
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'];
const PHASES = ['resolve', 'build', 'graph', 'layer', 'pack', 'publish'];
const FAILURE_CODES = ['UNKNOWN_PACKAGES', 'BUILD_FAILED', 'TIMEOUT', 'STORAGE', 'CRASH'];

const METRICS: Record<string, Spec> = {
  nixyard_http_requests_total: { role: 'api', type: 'counter', labels: ['route', 'method', 'status'], values: { route: ROUTES } },
  nixyard_http_request_duration_seconds: { role: 'api', type: 'histogram', labels: ['route', 'method', 'status'], values: { route: ROUTES } },
  nixyard_manifest_requests_total: { role: 'api', type: 'counter', labels: ['cache'], values: { cache: ['hit', 'miss'] } },
  nixyard_served_bytes_total: { role: 'api', type: 'counter', labels: ['route'], values: { route: ['manifest', 'blob'] } },
  nixyard_queue_jobs: { role: 'api', type: 'gauge', labels: ['system', 'state'], values: { state: QUEUE_STATES } },
  nixyard_workers: { role: 'api', type: 'gauge', labels: ['system'] },
  nixyard_prebuild_batches: { role: 'api', type: 'gauge', labels: ['state'], values: { state: ['running', 'settled'] } },
  nixyard_builds_total: { role: 'worker', type: 'counter', labels: ['result'], values: { result: ['started', 'succeeded', 'failed'] } },
  nixyard_build_failures_total: { role: 'worker', type: 'counter', labels: ['code'], values: { code: FAILURE_CODES } },
  nixyard_build_phase_duration_seconds: { role: 'worker', type: 'histogram', labels: ['phase', 'system'], values: { phase: PHASES } },
  nixyard_layer_cache_requests_total: { role: 'worker', type: 'counter', labels: ['result'], values: { result: ['hit', 'miss'] } },
  nixyard_packed_bytes_total: { role: 'worker', type: 'counter', labels: [] },
};

/** prom-client's default process metrics, a few of them: both roles must export these. */
const PROCESS_METRICS: Record<string, MetricType> = {
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
};

/** Series that Prometheus itself adds for every target, with the target labels. */
const SYNTHETIC_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added']);
const TARGET_LABELS = ['job', 'instance'];

// ---------------------------------------------------------------------------------------------
// PromQL, parsed by the Prometheus project's Lezer grammar. What an expression selects: its
// vector selectors (matrix selectors contain one), with their label matchers.

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

interface Matcher {
  label: string;
  op: string;
  value: string;
}

interface Selector {
  metric: string;
  matchers: Matcher[];
}

interface Analysis {
  selectors: Selector[];
  /** Labels named in by/without/on/ignoring/group_left/group_right. */
  grouping: string[];
  problems: string[];
}

function unquote(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  return literal.slice(1, -1).replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

/** Grafana's interval variables are not PromQL; everything else of Grafana's lives in strings. */
function withoutGrafanaIntervals(expr: string): string {
  return expr.replace(/\$\{?__(?:rate_interval|interval|range)\}?/g, '5m');
}

function analyse(expr: string): Analysis {
  const source = withoutGrafanaIntervals(expr);
  const tree = parser.parse(source);
  const text = (node: SyntaxNode) => source.slice(node.from, node.to);
  const out: Analysis = { selectors: [], grouping: [], problems: [] };
  if (source.trim() === '') out.problems.push('empty expression');

  tree.iterate({
    enter: (ref) => {
      const node = ref.node;
      if (node.type.isError) {
        out.problems.push(`syntax error at ${node.from}: «${source.slice(Math.max(0, node.from - 20), node.from)}⟨here⟩${source.slice(node.from, node.from + 20)}»`);
        return;
      }
      if (node.name === 'GroupingLabels') {
        for (const child of node.getChildren('LabelName')) out.grouping.push(text(child));
        for (const child of node.getChildren('QuotedLabelName')) out.grouping.push(unquote(text(child)));
      }
      if (node.name === 'VectorSelector') {
        const selector = selectorOf(node, text, out.problems);
        if (!selector.metric) out.problems.push(`a selector without a metric name: ${text(node)}`);
        out.selectors.push(selector);
      }
      if (node.name === 'FunctionCall') checkFunction(node, text, out);
    },
  });
  return out;
}

/** A vector selector's metric name (an identifier, {"quoted.name"} or __name__="...") and matchers. */
function selectorOf(node: SyntaxNode, text: (n: SyntaxNode) => string, problems: string[]): Selector {
  const selector: Selector = { metric: '', matchers: [] };
  const identifier = node.getChild('Identifier');
  if (identifier) selector.metric = text(identifier);
  const list = node.getChild('LabelMatchers');
  for (let child = list?.firstChild; child; child = child.nextSibling) {
    if (child.name === 'QuotedLabelName') selector.metric = unquote(text(child));
    if (child.name !== 'UnquotedLabelMatcher' && child.name !== 'QuotedLabelMatcher') continue;
    const name = child.getChild('LabelName') ?? child.getChild('QuotedLabelName');
    const op = child.getChild('MatchOp');
    const value = child.getChild('StringLiteral');
    if (!name || !op || !value) continue; // a syntax error, reported as such
    const label = name.name === 'QuotedLabelName' ? unquote(text(name)) : text(name);
    const matcher = { label, op: text(op), value: unquote(text(value)) };
    if (label !== '__name__') selector.matchers.push(matcher);
    else if (matcher.op === '=') selector.metric = matcher.value;
    else problems.push(`__name__${matcher.op}"${matcher.value}": name the metric exactly, so that it can be checked`);
  }
  return selector;
}

function descendants(node: SyntaxNode, name: string): SyntaxNode[] {
  const found: SyntaxNode[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (child.name === name) found.push(child);
    found.push(...descendants(child, name));
  }
  return found;
}

const COUNTER_FUNCTIONS = new Set(['Rate', 'Irate', 'Increase', 'Resets']);

/** rate() and friends over a range of a counter; histogram_quantile() over buckets keeping `le`. */
function checkFunction(node: SyntaxNode, text: (n: SyntaxNode) => string, out: Analysis): void {
  const fn = node.getChild('FunctionIdentifier')?.firstChild?.name ?? '';
  const body = node.getChild('FunctionCallBody');
  const args: SyntaxNode[] = [];
  for (let child = body?.firstChild; child; child = child.nextSibling) if (!child.type.isError) args.push(child);
  if (COUNTER_FUNCTIONS.has(fn)) {
    const arg = args[0];
    if (!arg || (arg.name !== 'MatrixSelector' && arg.name !== 'SubqueryExpr')) out.problems.push(`${text(node)}: ${fn.toLowerCase()}() takes a range vector`);
    else out.problems.push(...counterOnly(arg, text).map((m) => `${fn.toLowerCase()}() over ${m}, which is not a counter`));
  }
  if (fn === 'HistogramQuantile') {
    const arg = args[1];
    const inner = arg ? text(arg) : '';
    if (!/_bucket\b/.test(inner)) out.problems.push(`${text(node)}: histogram_quantile() needs _bucket series`);
    // Every aggregation on the way to the buckets must keep `le`.
    for (let agg: SyntaxNode | null = arg ?? null; agg && agg.name === 'AggregateExpr'; agg = agg.getChild('FunctionCallBody')?.firstChild ?? null) {
      const modifier = agg.getChild('AggregateModifier');
      const labels = modifier?.getChild('GroupingLabels')?.getChildren('LabelName').map(text) ?? [];
      const keeps = modifier?.getChild('By') ? labels.includes('le') : modifier?.getChild('Without') ? !labels.includes('le') : false;
      if (!keeps) out.problems.push(`${text(node)}: ${text(agg).slice(0, 40)}… drops the le label`);
    }
  }
}

/** Metric names under `node` that are not counters (or a histogram's/summary's counter series). */
function counterOnly(node: SyntaxNode, text: (n: SyntaxNode) => string): string[] {
  const names = [node, ...descendants(node, 'VectorSelector')].filter((n) => n.name === 'VectorSelector').map((n) => selectorOf(n, text, []).metric);
  return names.filter((name) => exported.has(name) && !counterLike.has(name));
}

/** Filled from the scrapes: every series name exported, and those that rate() may take. */
const exported = new Set<string>();
const counterLike = new Set<string>();

// ---------------------------------------------------------------------------------------------

interface Scrapes {
  api: Exposition;
  worker: Exposition;
}

/** What a series name stands for in the scrapes: its family, or a series Prometheus adds itself. */
interface Resolved {
  labels: Set<string>;
  values: Map<string, Set<string>>;
}

function resolveSeries(scrapes: Scrapes, name: string): Resolved | undefined {
  if (SYNTHETIC_SERIES.has(name)) return { labels: new Set(TARGET_LABELS), values: new Map() };
  for (const exposition of [scrapes.api, scrapes.worker]) {
    const f = familyOfSample(exposition, name);
    if (!f) continue;
    const samples = f.samples.filter((s) => s.name === name);
    const spec = METRICS[f.name];
    const labels = new Set([...TARGET_LABELS, ...(spec?.labels ?? []), ...samples.flatMap((s) => Object.keys(s.labels))]);
    const values = new Map<string, Set<string>>();
    for (const label of labels) {
      values.set(label, new Set([...(spec?.values?.[label] ?? []), ...samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined)]));
    }
    return { labels, values };
  }
  return undefined;
}

/** Every problem of one expression: syntax, unknown metrics, labels or values, functions misused. */
function problemsOf(scrapes: Scrapes, expr: string, labelRefs: readonly string[] = []): string[] {
  const analysis = analyse(expr);
  const problems = [...analysis.problems];
  const known = new Set<string>(TARGET_LABELS);
  for (const { metric, matchers } of analysis.selectors) {
    if (!metric) continue;
    const resolved = resolveSeries(scrapes, metric);
    if (!resolved) {
      problems.push(`metric ${metric} is exported by neither the API nor the worker`);
      continue;
    }
    resolved.labels.forEach((l) => known.add(l));
    for (const { label, op, value } of matchers) {
      if (!resolved.labels.has(label)) {
        problems.push(`${metric} has no label ${label}`);
        continue;
      }
      // Literal values (or an alternation of literals) must be values the label can take. Values
      // with a Grafana variable in them, and other regular expressions, are not checked.
      const literal = op === '=' || op === '!=' ? [value] : /^[A-Za-z0-9_-]+(\|[A-Za-z0-9_-]+)*$/.test(value) ? value.split('|') : [];
      const allowed = resolved.values.get(label);
      if (value.includes('$') || !allowed || allowed.size === 0 || label === 'instance') continue;
      for (const v of literal) if (v !== '' && !allowed.has(v)) problems.push(`${metric}{${label}${op}"${value}"}: "${v}" is not a value of ${label} (${[...allowed].join(', ')})`);
    }
  }
  for (const label of [...analysis.grouping, ...labelRefs]) {
    if (!known.has(label)) problems.push(`label ${label} belongs to none of the metrics the expression selects`);
  }
  return problems;
}

/** `{{label}}` in a legend, `$labels.label` in an alert annotation. */
function templateLabels(template: string): string[] {
  return [...template.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}|\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => (m[1] ?? m[2])!);
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ refId?: string; expr?: string; legendFormat?: string }>;
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; definition?: string; query?: string | { query?: string } }> };
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertRules(): Rule[] {
  const doc = parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

// ---------------------------------------------------------------------------------------------

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/, `${url} serves the text format`);
  return res.text();
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('metrics, dashboard and alerts against a real stack', () => {
  let stack: TestStack;
  let scrapes: Scrapes;
  const pulled = { manifestBytes: 0, blobBytes: 0, layers: [] as Array<{ digest: string; size: number }> };

  before(async () => {
    stack = await startStack({ env: { NIXERY_MANIFEST_TTL: String(MANIFEST_TTL_SECONDS) } });
    const registry = `http://${stack.registry}`;
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${registry}${path}`, { headers });
      return { res, body: Buffer.from(await res.arrayBuffer()) };
    };
    const pullManifest = async (requestId: string) => {
      const { res, body } = await get('/v2/hello/manifests/latest', { Accept: OCI_IMAGE_MANIFEST, 'X-Request-Id': requestId });
      assert.equal(res.status, 200, `hello: ${body.toString().slice(0, 300)}`);
      assert.equal(res.headers.get('x-request-id'), requestId, 'the request id comes back');
      assert.equal(res.headers.get('docker-content-digest'), sha256(body));
      pulled.manifestBytes += body.length;
      return JSON.parse(body.toString()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
    };
    const expectUnknown = async (name: string) => {
      const { res, body } = await get(`/v2/${name}/manifests/latest`, { Accept: OCI_IMAGE_MANIFEST });
      assert.equal(res.status, 404, `${name}: ${body.toString().slice(0, 300)}`);
      assert.equal((JSON.parse(body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    };

    // The worker announces itself just after its metrics port opens; the API's gauge says when.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const workers = parseExposition(await scrape(stack.apiMetricsUrl), 'api').get('nixyard_workers');
      if ((workers ? (valueOf(workers, 'nixyard_workers', { system: SYSTEM }) ?? 0) : 0) >= 1) break;
      assert.ok(Date.now() < deadline, 'a live worker within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    // An unknown package before any package index exists: a build job that fails with
    // UNKNOWN_PACKAGES on the worker.
    await expectUnknown('nosuch-pkg-y');
    // A pull: manifest (built now), then its config and a layer.
    const manifest = await pullManifest('metrics-e2e-first-pull');
    pulled.layers = manifest.layers;
    // The same pull again: a stored manifest answers.
    const cached = await pullManifest('metrics-e2e-cached-pull');
    assert.deepEqual(cached, manifest);
    for (const blob of [manifest.config, manifest.layers[0]!]) {
      const { res, body } = await get(`/v2/hello/blobs/${blob.digest}`);
      assert.equal(res.status, 200);
      assert.equal(sha256(body), blob.digest);
      assert.equal(body.length, blob.size);
      pulled.blobBytes += body.length;
    }
    // An unknown package now that the index is published: refused by the API, no job.
    await expectUnknown('nosuch-pkg-x');
    // Once the manifest is stale (NIXERY_MANIFEST_TTL), a pull rebuilds it: every layer is
    // already packed, so the layer cache hits.
    await new Promise((r) => setTimeout(r, MANIFEST_TTL_SECONDS * 1000 + 500));
    assert.deepEqual(await pullManifest('metrics-e2e-stale-pull'), manifest, 'the rebuild makes the same image');

    scrapes = {
      api: parseExposition(await scrape(stack.apiMetricsUrl), 'api /metrics'),
      worker: parseExposition(await scrape(stack.workerMetricsUrl), 'worker /metrics'),
    };
    for (const exposition of [scrapes.api, scrapes.worker]) {
      for (const f of exposition.values()) {
        SUFFIXES[f.type].forEach((s) => exported.add(f.name + s));
        if (f.type === 'counter') counterLike.add(f.name);
        if (f.type === 'histogram') ['_bucket', '_sum', '_count'].forEach((s) => counterLike.add(f.name + s));
        if (f.type === 'summary') ['_sum', '_count'].forEach((s) => counterLike.add(f.name + s));
      }
    }
  });

  after(async () => {
    await stack?.stop();
  });

  test('the API exports its metrics with the labels and values the pulls produced', () => {
    const { api } = scrapes;
    const requests = family(api, 'nixyard_http_requests_total', 'counter', ['route', 'method', 'status']);
    assert.equal(valueOf(requests, requests.name, { route: 'manifest', method: 'GET', status: '200' }), 3, `three manifest pulls of hello; exported:${show(requests)}`);
    assert.equal(valueOf(requests, requests.name, { route: 'manifest', method: 'GET', status: '404' }), 2, `two unknown packages; exported:${show(requests)}`);
    assert.equal(valueOf(requests, requests.name, { route: 'blob', method: 'GET', status: '200' }), 2, `config and layer; exported:${show(requests)}`);
    assert.ok((valueOf(requests, requests.name, { route: 'metrics', method: 'GET', status: '200' }) ?? 0) >= 1, 'the scrapes before');
    for (const route of labelValues(requests, 'route')) assert.ok(ROUTES.includes(route), `route="${route}" is a documented route`);

    const duration = family(api, 'nixyard_http_request_duration_seconds', 'histogram', ['route', 'method', 'status']);
    assert.equal(histogramCount(duration, { route: 'manifest', method: 'GET', status: '200' }), 3, 'one observation per request');
    assert.equal(histogramCount(duration, { route: 'manifest', method: 'GET', status: '404' }), 2);
    assert.equal(histogramCount(duration, { route: 'blob', method: 'GET', status: '200' }), 2);

    const manifests = family(api, 'nixyard_manifest_requests_total', 'counter', ['cache']);
    assert.equal(valueOf(manifests, manifests.name, { cache: 'hit' }), 1, 'the cached pull');
    assert.equal(valueOf(manifests, manifests.name, { cache: 'miss' }), 4, 'two unknown packages, the first pull and the stale one');

    const served = family(api, 'nixyard_served_bytes_total', 'counter', ['route']);
    assert.equal(valueOf(served, served.name, { route: 'manifest' }), pulled.manifestBytes, `manifest bytes received; exported:${show(served)}`);
    assert.equal(valueOf(served, served.name, { route: 'blob' }), pulled.blobBytes, `blob bytes received; exported:${show(served)}`);

    const queue = family(api, 'nixyard_queue_jobs', 'gauge', ['system', 'state']);
    assert.deepEqual(labelValues(queue, 'system'), new Set([SYSTEM]));
    for (const state of QUEUE_STATES) assert.notEqual(valueOf(queue, queue.name, { system: SYSTEM, state }), undefined, `state="${state}" is sampled`);
    assert.equal(valueOf(queue, queue.name, { system: SYSTEM, state: 'failed' }), 1, 'the unknown package job');
    assert.ok((valueOf(queue, queue.name, { system: SYSTEM, state: 'completed' }) ?? 0) >= 1, 'the hello job');
    assert.equal(valueOf(queue, queue.name, { system: SYSTEM, state: 'waiting' }), 0);

    const workers = family(api, 'nixyard_workers', 'gauge', ['system']);
    assert.equal(valueOf(workers, workers.name, { system: SYSTEM }), 1, 'one live worker');

    const batches = family(api, 'nixyard_prebuild_batches', 'gauge', ['state']);
    assert.equal(valueOf(batches, batches.name, { state: 'running' }), 0);
    assert.equal(valueOf(batches, batches.name, { state: 'settled' }), 0);

    for (const [name, type] of Object.entries(PROCESS_METRICS)) family(api, name, type, []);
  });

  test('the worker exports its metrics with the labels and values the builds produced', () => {
    const { worker } = scrapes;
    const builds = family(worker, 'nixyard_builds_total', 'counter', ['result']);
    assert.equal(valueOf(builds, builds.name, { result: 'started' }), 3, 'unknown package, first build, rebuild');
    assert.equal(valueOf(builds, builds.name, { result: 'succeeded' }), 2);
    assert.equal(valueOf(builds, builds.name, { result: 'failed' }), 1);

    const failures = family(worker, 'nixyard_build_failures_total', 'counter', ['code']);
    assert.equal(valueOf(failures, failures.name, { code: 'UNKNOWN_PACKAGES' }), 1);
    for (const code of labelValues(failures, 'code')) assert.ok(FAILURE_CODES.includes(code), `code="${code}" is documented`);

    const phases = family(worker, 'nixyard_build_phase_duration_seconds', 'histogram', ['phase', 'system']);
    assert.deepEqual(labelValues(phases, 'phase'), new Set(PHASES));
    for (const phase of PHASES) assert.equal(histogramCount(phases, { phase, system: SYSTEM }), 2, `${phase}: one observation per successful build`);

    const layers = pulled.layers.length;
    const cache = family(worker, 'nixyard_layer_cache_requests_total', 'counter', ['result']);
    assert.equal(valueOf(cache, cache.name, { result: 'miss' }), layers, 'the first build packed every layer');
    assert.equal(valueOf(cache, cache.name, { result: 'hit' }), layers, 'the rebuild packed none');

    const packed = family(worker, 'nixyard_packed_bytes_total', 'counter', []);
    assert.equal(valueOf(packed, packed.name), pulled.layers.reduce((sum, l) => sum + l.size, 0), 'the layers of hello, once');

    for (const [name, type] of Object.entries(PROCESS_METRICS)) family(worker, name, type, []);
  });

  test('every documented metric is exported by its role', () => {
    for (const [name, spec] of Object.entries(METRICS)) family(spec.role === 'api' ? scrapes.api : scrapes.worker, name, spec.type, spec.labels);
  });

  test('every dashboard query parses and selects exported metrics, labels and values', () => {
    const dashboard = readDashboard();
    assert.equal(dashboard.uid, 'nixyard');
    assert.ok(dashboard.schemaVersion >= 39, 'a current Grafana schema');
    const panels = allPanels(dashboard.panels);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const problems: string[] = [];
    const used = new Set<string>();
    let queries = 0;
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      assert.ok(panel.targets?.length, `panel "${panel.title}" has queries`);
      assert.ok(['${DS_PROMETHEUS}', 'prometheus'].includes(panel.datasource?.uid ?? ''), `panel "${panel.title}" uses the Prometheus datasource`);
      const refIds = panel.targets.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `panel "${panel.title}": refIds are unique`);
      for (const target of panel.targets) {
        assert.equal(typeof target.expr, 'string', `panel "${panel.title}" ${target.refId}: a PromQL expression`);
        queries++;
        for (const p of problemsOf(scrapes, target.expr!, templateLabels(target.legendFormat ?? ''))) problems.push(`panel "${panel.title}" ${target.refId}: ${p}\n    ${target.expr}`);
        for (const s of analyse(target.expr!).selectors) used.add(familyOfSample(scrapes.api, s.metric)?.name ?? familyOfSample(scrapes.worker, s.metric)?.name ?? s.metric);
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? variable.definition ?? '');
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query.trim());
      if (!m) {
        problems.push(`variable ${variable.name}: only label_values(<selector>, <label>) is checked here: ${query}`);
        continue;
      }
      for (const p of problemsOf(scrapes, m[1]!, [m[2]!])) problems.push(`variable ${variable.name}: ${p}`);
    }
    assert.ok(queries >= 20, `the dashboard has its queries (${queries})`);
    assert.deepEqual(problems, [], problems.join('\n'));
    for (const name of Object.keys(METRICS)) assert.ok(used.has(name), `some panel shows ${name}`);
  });

  test('every alert rule parses, selects exported metrics and is labelled and annotated', () => {
    const rules = alertRules();
    assert.ok(rules.length >= 5);
    const problems: string[] = [];
    for (const rule of rules) {
      const name = rule.alert ?? rule.record ?? '?';
      assert.ok(rule.alert, `${name} is an alert`);
      assert.match(rule.for ?? '', /^\d+[smh]$/, `${name} has for:`);
      assert.ok(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${name} has a severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${name} has a summary and a description`);
      const refs = templateLabels(`${rule.annotations.summary} ${rule.annotations.description}`);
      for (const p of problemsOf(scrapes, rule.expr, refs)) problems.push(`${name}: ${p}\n    ${rule.expr}`);
    }
    assert.deepEqual(problems, [], problems.join('\n'));
    const exprs = rules.map((r) => r.expr.replace(/\s+/g, ' '));
    assert.ok(exprs.some((e) => /nixyard_queue_jobs\{[^}]*waiting/.test(e)), 'an alert on waiting jobs');
    assert.ok(exprs.some((e) => /nixyard_build_failures_total/.test(e) && /nixyard_builds_total/.test(e)), 'an alert on the build failure ratio');
    assert.ok(exprs.some((e) => /nixyard_workers\) == 0/.test(e)), 'an alert on no live worker');
    assert.ok(exprs.some((e) => /absent\(nixyard_workers\)/.test(e)), 'an alert on the worker gauge missing');
    assert.ok(exprs.some((e) => /status=~"5\.\."/.test(e)), 'an alert on the 5xx ratio');
  });

  test('the checks catch a misspelt metric, label or value, and a syntax error', () => {
    assert.deepEqual(problemsOf(scrapes, 'sum by (route) (rate(nixyard_http_requests_total[5m]))'), []);
    assert.match(problemsOf(scrapes, 'sum(rate(nixyard_http_request_total[5m]))').join(), /nixyard_http_request_total is exported by neither/);
    assert.match(problemsOf(scrapes, 'sum(rate(nixyard_manifest_requests_total{cahce="hit"}[5m]))').join(), /has no label cahce/);
    assert.match(problemsOf(scrapes, 'sum(rate(nixyard_manifest_requests_total{cache="hti"}[5m]))').join(), /"hti" is not a value of cache/);
    assert.match(problemsOf(scrapes, 'sum by (rotue) (rate(nixyard_http_requests_total[5m]))').join(), /label rotue/);
    assert.match(problemsOf(scrapes, 'sum(rate(nixyard_http_requests_total[5m])').join(), /syntax error/);
    assert.match(problemsOf(scrapes, 'rate(nixyard_workers[5m])').join(), /not a counter/);
    assert.match(problemsOf(scrapes, 'rate(nixyard_builds_total)').join(), /range vector|syntax error/);
    assert.match(problemsOf(scrapes, 'histogram_quantile(0.9, sum by (route) (rate(nixyard_http_request_duration_seconds_bucket[5m])))').join(), /drops the le label/);
    assert.match(problemsOf(scrapes, 'nixyard_http_request_duration_seconds').join(), /exported by neither/, 'a classic histogram has no bare series');
    assert.deepEqual(problemsOf(scrapes, '{__name__="nixyard_packed_bytes_total"}'), []);
  });
});

describe('the compose topology, Prometheus and Grafana agree', () => {
  interface Compose {
    services: Record<string, { environment?: Record<string, string>; volumes?: string[]; command?: string[]; image?: string }>;
  }
  const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
  const prometheus = parseYaml(readFileSync(PROMETHEUS, 'utf8')) as {
    rule_files: string[];
    scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
  };

  test('Prometheus scrapes every API replica and worker of the compose file on its metrics port', () => {
    const targets = (job: string) => prometheus.scrape_configs.find((c) => c.job_name === job)?.static_configs.flatMap((s) => s.targets) ?? [];
    const services = Object.entries(compose.services);
    const apis = services.filter(([, s]) => s.image?.startsWith('nixyard-api')).map(([name, s]) => `${name}:${s.environment?.PORT}`);
    const workers = services.filter(([, s]) => s.image?.startsWith('nixyard-worker')).map(([name, s]) => `${name}:${s.environment?.NIXYARD_WORKER_METRICS_PORT}`);
    assert.equal(apis.length, 2, 'two API replicas');
    assert.equal(workers.length, 2, 'two workers');
    assert.deepEqual(targets('nixyard-api').sort(), apis.sort());
    assert.deepEqual(targets('nixyard-worker').sort(), workers.sort());
    // Mounted at /etc/prometheus from ops/prometheus.
    assert.ok(compose.services.prometheus?.volumes?.some((v) => v.startsWith('./ops/prometheus:/etc/prometheus')));
    assert.deepEqual(prometheus.rule_files, ['/etc/prometheus/alerts.yml']);
  });

  test("Grafana's provisioning finds the Prometheus datasource and the dashboard", () => {
    const provisioning = join(REPO_ROOT, 'ops/grafana/provisioning');
    const datasources = parseYaml(readFileSync(join(provisioning, 'datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ uid: string; type: string; url: string }> };
    assert.deepEqual(
      datasources.datasources.map((d) => [d.uid, d.type, d.url]),
      [['prometheus', 'prometheus', 'http://prometheus:9090']],
    );
    const dashboards = parseYaml(readFileSync(join(provisioning, 'dashboards/nixyard.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const path = dashboards.providers[0]!.options.path;
    const grafana = compose.services.grafana?.volumes ?? [];
    assert.ok(grafana.some((v) => v === `./ops/grafana/dashboards:${path}:ro`), `the dashboards are mounted at ${path}`);
    assert.ok(grafana.some((v) => v.startsWith('./ops/grafana/provisioning:/etc/grafana/provisioning')));
    const variable = readDashboard().templating.list.find((v) => v.name === 'DS_PROMETHEUS') as { current?: { value?: string } } | undefined;
    assert.equal(variable?.current?.value, 'prometheus', 'the dashboard picks the provisioned datasource');
  });
});
