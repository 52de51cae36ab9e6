// The Prometheus text exposition format (version 0.0.4), parsed strictly: a line that is not a
// comment, a HELP/TYPE line or a well-formed sample fails the test. Then lookups over the parsed
// families: a family checked for its type and label names, a sample's value, a histogram's
// buckets checked and counted.

import assert from 'node:assert/strict';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

/** A scrape: its families by name. */
export type Exposition = Map<string, Family>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
// As Go's strconv.ParseFloat, which Prometheus uses: Inf and NaN in any case (prom-client writes "Nan").
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)$/i;

/** The series names a family of each type has: its name with these suffixes. */
export const SUFFIXES: Record<MetricType, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''], counter: [''], gauge: [''], untyped: [''] };

/** Parses one scrape; `where` names it in failure messages. */
export function parseExposition(text: string, where: string): Exposition {
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
export function familyOfSample(families: Exposition, name: string): Family | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => family.name + suffix === name)) return family;
  }
  return undefined;
}

/** The family, checked for its type and for exactly these label names on every sample. */
export function family(exposition: Exposition, name: string, type: MetricType, labelNames: readonly string[]): Family {
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
export function valueOf(f: Family, sampleName: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return f.samples.find((s) => s.name === sampleName && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

/** A family's samples, one a line, for assertion messages. */
export function show(f: Family): string {
  return f.samples.map((s) => `\n  ${s.name}${JSON.stringify(s.labels)} ${s.value}`).join('');
}

/** The values one label takes across a family's samples. */
export function labelValues(f: Family, label: string): Set<string> {
  return new Set(f.samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined));
}

/** A histogram's series for one label set: cumulative buckets up to +Inf = _count, and a _sum. Returns _count. */
export function histogramCount(f: Family, labels: Record<string, string>): number {
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
