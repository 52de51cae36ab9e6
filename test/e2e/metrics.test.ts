// Keeps the operations bundle honest. A real stack (private Redis, the real API and worker
// processes, the bundled package set) serves a few pulls; then
//  1. both /metrics scrapes must hold every documented metric, with its type, its label names,
//     and the label values and counts those pulls must have produced;
//  2. every PromQL expression of the Grafana dashboard and of the Prometheus alert rules must
//     parse (Prometheus' own Lezer grammar, @prometheus-io/lezer-promql) and select only metrics,
//     labels and label values that the scrapes really export, with rate() over counters only;
//  3. docker-compose.yml, the Prometheus scrape targets and Grafana's provisioning must agree.
// A panel or rule with a misspelt metric, label or value fails here instead of staying empty.
//
// The exposition-format parser and lookups are ../helpers/prometheus-exposition.ts; the PromQL,
// dashboard and alert checker is ../helpers/promql-check.ts.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { BUILD_PHASES, FAILURE_COUNTER_CODES, HTTP_ROUTE_LABELS, OCI_IMAGE_MANIFEST, QUEUE_STATES } from '@nixyard/core';
import { REPO_ROOT } from '../../scripts/stack.js';
import {
  familyOfSample,
  family,
  histogramCount,
  labelValues,
  parseExposition,
  show,
  valueOf,
  type Exposition,
  type MetricType,
} from '../helpers/prometheus-exposition.js';
import { PromqlChecker, alertRules, allPanels, readDashboard, templateLabels } from '../helpers/promql-check.js';
import { startStack, type TestStack } from '../helpers/stack.js';

const SYSTEM = 'x86_64-linux';
const DASHBOARD = join(REPO_ROOT, 'ops/grafana/dashboards/nixyard.json');
const ALERTS = join(REPO_ROOT, 'ops/prometheus/alerts.yml');
const PROMETHEUS = join(REPO_ROOT, 'ops/prometheus/prometheus.yml');
// Stale after five seconds, so that a third pull of `hello` rebuilds it and finds its layers packed.
const MANIFEST_TTL_SECONDS = 5;

// ---------------------------------------------------------------------------------------------
// The metrics this project documents (docs/operations.md), with their label names and the
// values their labels may take; PromQL label matchers are checked against these as well.

interface Spec {
  role: 'api' | 'worker';
  type: MetricType;
  labels: readonly string[];
  values?: Record<string, readonly string[]>;
}

const ROUTES: readonly string[] = HTTP_ROUTE_LABELS;
// Queue states, build phases and failure codes are the farm's own lists (build-phases.ts).
const PHASES: readonly string[] = BUILD_PHASES;
const FAILURE_CODES: readonly string[] = FAILURE_COUNTER_CODES;

const METRICS: Record<string, Spec> = {
  nixyard_http_requests_total: { role: 'api', type: 'counter', labels: ['route', 'method', 'status'], values: { route: ROUTES } },
  nixyard_http_request_duration_seconds: { role: 'api', type: 'histogram', labels: ['route', 'method', 'status'], values: { route: ROUTES } },
  nixyard_manifest_requests_total: { role: 'api', type: 'counter', labels: ['cache'], values: { cache: ['hit', 'miss'] } },
  nixyard_served_bytes_total: { role: 'api', type: 'counter', labels: ['route'], values: { route: ['manifest', 'blob'] } },
  nixyard_queue_jobs: { role: 'api', type: 'gauge', labels: ['system', 'state'], values: { state: QUEUE_STATES } },
  nixyard_workers: { role: 'api', type: 'gauge', labels: ['system'] },
  nixyard_prebuild_batches: { role: 'api', type: 'gauge', labels: ['state'], values: { state: ['running', 'settled'] } },
  nixyard_admission_refusals_total: { role: 'api', type: 'counter', labels: ['reason'], values: { reason: ['queue_full', 'client_limit'] } },
  nixyard_auth_failures_total: {
    role: 'api',
    type: 'counter',
    labels: ['reason'],
    values: { reason: ['malformed', 'unsupported_scheme', 'unknown_user', 'wrong_password', 'invalid_token', 'expired_token'] },
  },
  nixyard_farm_sampled: { role: 'api', type: 'gauge', labels: ['gauge'], values: { gauge: ['nixyard_queue_jobs', 'nixyard_workers', 'nixyard_prebuild_batches'] } },
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

interface Scrapes {
  api: Exposition;
  worker: Exposition;
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
  let checker: PromqlChecker;
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
    checker = new PromqlChecker([scrapes.api, scrapes.worker], METRICS);
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

    // Exported at 0 from the start; these few pulls are far below both limits.
    const refusals = family(api, 'nixyard_admission_refusals_total', 'counter', ['reason']);
    for (const reason of ['queue_full', 'client_limit']) assert.equal(valueOf(refusals, refusals.name, { reason }), 0, `reason="${reason}"; exported:${show(refusals)}`);
    // The three gauges above were read from Redis at this scrape.
    const sampled = family(api, 'nixyard_farm_sampled', 'gauge', ['gauge']);
    for (const gauge of ['nixyard_queue_jobs', 'nixyard_workers', 'nixyard_prebuild_batches']) assert.equal(valueOf(sampled, sampled.name, { gauge }), 1, `gauge="${gauge}"; exported:${show(sampled)}`);

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
    const dashboard = readDashboard(DASHBOARD);
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
        for (const p of checker.problemsOf(target.expr!, templateLabels(target.legendFormat ?? ''))) problems.push(`panel "${panel.title}" ${target.refId}: ${p}\n    ${target.expr}`);
        for (const s of checker.analyse(target.expr!).selectors) used.add(familyOfSample(scrapes.api, s.metric)?.name ?? familyOfSample(scrapes.worker, s.metric)?.name ?? s.metric);
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? variable.definition ?? '');
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query.trim());
      if (!m) {
        problems.push(`variable ${variable.name}: only label_values(<selector>, <label>) is checked here: ${query}`);
        continue;
      }
      for (const p of checker.problemsOf(m[1]!, [m[2]!])) problems.push(`variable ${variable.name}: ${p}`);
    }
    assert.ok(queries >= 20, `the dashboard has its queries (${queries})`);
    assert.deepEqual(problems, [], problems.join('\n'));
    for (const name of Object.keys(METRICS)) assert.ok(used.has(name), `some panel shows ${name}`);
  });

  test('every alert rule parses, selects exported metrics and is labelled and annotated', () => {
    const rules = alertRules(ALERTS);
    assert.ok(rules.length >= 5);
    const problems: string[] = [];
    for (const rule of rules) {
      const name = rule.alert ?? rule.record ?? '?';
      assert.ok(rule.alert, `${name} is an alert`);
      assert.match(rule.for ?? '', /^\d+[smh]$/, `${name} has for:`);
      assert.ok(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${name} has a severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${name} has a summary and a description`);
      const refs = templateLabels(`${rule.annotations.summary} ${rule.annotations.description}`);
      for (const p of checker.problemsOf(rule.expr, refs)) problems.push(`${name}: ${p}\n    ${rule.expr}`);
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
    assert.deepEqual(checker.problemsOf('sum by (route) (rate(nixyard_http_requests_total[5m]))'), []);
    assert.match(checker.problemsOf('sum(rate(nixyard_http_request_total[5m]))').join(), /nixyard_http_request_total is exported by neither/);
    assert.match(checker.problemsOf('sum(rate(nixyard_manifest_requests_total{cahce="hit"}[5m]))').join(), /has no label cahce/);
    assert.match(checker.problemsOf('sum(rate(nixyard_manifest_requests_total{cache="hti"}[5m]))').join(), /"hti" is not a value of cache/);
    assert.match(checker.problemsOf('sum by (rotue) (rate(nixyard_http_requests_total[5m]))').join(), /label rotue/);
    assert.match(checker.problemsOf('sum(rate(nixyard_http_requests_total[5m])').join(), /syntax error/);
    assert.match(checker.problemsOf('rate(nixyard_workers[5m])').join(), /not a counter/);
    assert.match(checker.problemsOf('rate(nixyard_builds_total)').join(), /range vector|syntax error/);
    assert.match(checker.problemsOf('histogram_quantile(0.9, sum by (route) (rate(nixyard_http_request_duration_seconds_bucket[5m])))').join(), /drops the le label/);
    assert.match(checker.problemsOf('nixyard_http_request_duration_seconds').join(), /exported by neither/, 'a classic histogram has no bare series');
    assert.deepEqual(checker.problemsOf('{__name__="nixyard_packed_bytes_total"}'), []);
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
    const variable = readDashboard(DASHBOARD).templating.list.find((v) => v.name === 'DS_PROMETHEUS') as { current?: { value?: string } } | undefined;
    assert.equal(variable?.current?.value, 'prometheus', 'the dashboard picks the provisioned datasource');
  });
});
