// The compose Prometheus configuration (ops/prometheus/prometheus.yml) rewritten for the farm: it
// reads the real file and substitutes only what must differ, the scrape targets (compose service
// names become the farm hosts' addresses, with the farm's three workers), the alert rules' path
// (the repository's ops/prometheus/alerts.yml) and, optionally, shorter intervals so that tests see
// a sample within seconds. It expects the file's present shape and throws on anything else (a job
// it does not know, a target on another port), so a change to the file is noticed here rather
// than scraping something else.

import { join } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { REPO_ROOT } from '../stack.js';

export const PROMETHEUS_CONF = join(REPO_ROOT, 'ops/prometheus/prometheus.yml');
export const ALERT_RULES = join(REPO_ROOT, 'ops/prometheus/alerts.yml');

export interface PrometheusTargets {
  /** `address:port` of each API replica, in place of `api-N:8080`. */
  api: string[];
  /** `address:port` of each worker's metrics, in place of `worker-N:9091`. */
  worker: string[];
  /** Prometheus itself, in place of `localhost:9090`. */
  prometheus: string;
}

export interface PrometheusSubstitution {
  targets: PrometheusTargets;
  /** Replaces global.scrape_interval and evaluation_interval (scrape_timeout 80% of it). */
  scrapeIntervalSeconds?: number;
}

/** Per job: the compose targets it must have now (as patterns) and what replaces them. */
const JOBS: Record<string, { compose: RegExp; targets: (t: PrometheusTargets) => string[] }> = {
  'nixyard-api': { compose: /^api-\d+:8080$/, targets: (t) => t.api },
  'nixyard-worker': { compose: /^worker-\d+:9091$/, targets: (t) => t.worker },
  prometheus: { compose: /^localhost:9090$/, targets: (t) => [t.prometheus] },
};

function fail(what: string): never {
  throw new Error(`ops/prometheus/prometheus.yml: ${what}`);
}

export function farmPrometheusConfig(source: string, options: PrometheusSubstitution): string {
  const doc: Document = parseDocument(source);
  if (doc.errors.length > 0) fail(doc.errors[0]!.message);

  const rules = doc.get('rule_files');
  if (!isSeq(rules) || rules.items.length !== 1 || !String(doc.getIn(['rule_files', 0])).endsWith('/alerts.yml')) {
    fail('expected rule_files to be the one alerts.yml');
  }
  doc.setIn(['rule_files', 0], ALERT_RULES);

  if (options.scrapeIntervalSeconds !== undefined) {
    const seconds = options.scrapeIntervalSeconds;
    if (!Number.isInteger(seconds) || seconds < 1) fail(`a scrape interval of ${seconds} s is not a whole number of seconds`);
    for (const key of ['scrape_interval', 'scrape_timeout', 'evaluation_interval']) {
      if (!doc.hasIn(['global', key])) fail(`expected global.${key}`);
    }
    doc.setIn(['global', 'scrape_interval'], `${seconds}s`);
    doc.setIn(['global', 'evaluation_interval'], `${seconds}s`);
    doc.setIn(['global', 'scrape_timeout'], `${Math.max(1, Math.floor(seconds * 0.8))}s`);
  }

  const jobs = doc.get('scrape_configs');
  if (!isSeq(jobs)) fail('expected a scrape_configs list');
  const seen = new Set<string>();
  jobs.items.forEach((job, i) => {
    if (!isMap(job)) fail(`scrape_configs[${i}] is not a mapping`);
    const name = String(job.get('job_name'));
    const spec = JOBS[name] ?? fail(`a job this script does not know: ${name} (scripts/farm/prometheus-config.ts)`);
    seen.add(name);
    const configs = job.get('static_configs');
    if (!isSeq(configs) || configs.items.length !== 1) fail(`job ${name}: expected exactly one static_configs entry`);
    const path = ['scrape_configs', i, 'static_configs', 0, 'targets'];
    const targets = doc.getIn(path);
    if (!isSeq(targets) || targets.items.length === 0) fail(`job ${name}: expected a list of targets`);
    for (const target of targets.toJSON() as unknown[]) {
      if (!spec.compose.test(String(target))) fail(`job ${name}: target ${String(target)} is not the compose one this script replaces`);
    }
    const replacement = doc.createNode(spec.targets(options.targets), { flow: true });
    for (const item of replacement.items) if (isScalar(item)) item.type = 'QUOTE_DOUBLE';
    doc.setIn(path, replacement);
  });
  for (const name of Object.keys(JOBS)) if (!seen.has(name)) fail(`expected a job ${name}`);
  return doc.toString();
}
