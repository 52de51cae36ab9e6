// Checks PromQL (Grafana dashboard queries, Prometheus alert rules) against what real scrapes
// export. Expressions are parsed by the Prometheus project's own Lezer grammar
// (@prometheus-io/lezer-promql); what an expression selects (its vector selectors, with their
// label matchers, and the labels it groups by) must be exported metrics, labels and values, and
// rate() and friends must take counters. Plus readers for the dashboard JSON and the rules file.

import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { SUFFIXES, familyOfSample, type Exposition } from './prometheus-exposition.js';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

export interface Matcher {
  label: string;
  op: string;
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
}

export interface Analysis {
  selectors: Selector[];
  /** Labels named in by/without/on/ignoring/group_left/group_right. */
  grouping: string[];
  problems: string[];
}

/** A documented metric's label names and the values its labels may take (beyond those scraped). */
export interface MetricSpec {
  labels: readonly string[];
  values?: Record<string, readonly string[]>;
}

/** Series that Prometheus itself adds for every target, with the target labels. */
export const SYNTHETIC_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added']);
export const TARGET_LABELS = ['job', 'instance'];

const COUNTER_FUNCTIONS = new Set(['Rate', 'Irate', 'Increase', 'Resets']);

function unquote(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  return literal.slice(1, -1).replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

/** Grafana's interval variables are not PromQL; everything else of Grafana's lives in strings. */
function withoutGrafanaIntervals(expr: string): string {
  return expr.replace(/\$\{?__(?:rate_interval|interval|range)\}?/g, '5m');
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

/**
 * PromQL checked against scrapes: `expositions` in the order a series name is looked up in (the
 * first that has it answers), `specs` the documented metrics' label names and values.
 */
export class PromqlChecker {
  /** Every series name exported, and those that rate() may take. */
  private readonly exported = new Set<string>();
  private readonly counterLike = new Set<string>();

  constructor(
    private readonly expositions: readonly Exposition[],
    private readonly specs: Readonly<Record<string, MetricSpec>>,
  ) {
    for (const exposition of expositions) {
      for (const f of exposition.values()) {
        SUFFIXES[f.type].forEach((s) => this.exported.add(f.name + s));
        if (f.type === 'counter') this.counterLike.add(f.name);
        if (f.type === 'histogram') ['_bucket', '_sum', '_count'].forEach((s) => this.counterLike.add(f.name + s));
        if (f.type === 'summary') ['_sum', '_count'].forEach((s) => this.counterLike.add(f.name + s));
      }
    }
  }

  /** What an expression selects, and its syntax errors and misused functions. */
  analyse(expr: string): Analysis {
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
        if (node.name === 'FunctionCall') this.checkFunction(node, text, out);
      },
    });
    return out;
  }

  /** Every problem of one expression: syntax, unknown metrics, labels or values, functions misused. */
  problemsOf(expr: string, labelRefs: readonly string[] = []): string[] {
    const analysis = this.analyse(expr);
    const problems = [...analysis.problems];
    const known = new Set<string>(TARGET_LABELS);
    for (const { metric, matchers } of analysis.selectors) {
      if (!metric) continue;
      const resolved = this.resolveSeries(metric);
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

  /** What a series name stands for in the scrapes: its family's labels and their values, or a series Prometheus adds itself. */
  private resolveSeries(name: string): { labels: Set<string>; values: Map<string, Set<string>> } | undefined {
    if (SYNTHETIC_SERIES.has(name)) return { labels: new Set(TARGET_LABELS), values: new Map() };
    for (const exposition of this.expositions) {
      const f = familyOfSample(exposition, name);
      if (!f) continue;
      const samples = f.samples.filter((s) => s.name === name);
      const spec = this.specs[f.name];
      const labels = new Set([...TARGET_LABELS, ...(spec?.labels ?? []), ...samples.flatMap((s) => Object.keys(s.labels))]);
      const values = new Map<string, Set<string>>();
      for (const label of labels) {
        values.set(label, new Set([...(spec?.values?.[label] ?? []), ...samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined)]));
      }
      return { labels, values };
    }
    return undefined;
  }

  /** rate() and friends over a range of a counter; histogram_quantile() over buckets keeping `le`. */
  private checkFunction(node: SyntaxNode, text: (n: SyntaxNode) => string, out: Analysis): void {
    const fn = node.getChild('FunctionIdentifier')?.firstChild?.name ?? '';
    const body = node.getChild('FunctionCallBody');
    const args: SyntaxNode[] = [];
    for (let child = body?.firstChild; child; child = child.nextSibling) if (!child.type.isError) args.push(child);
    if (COUNTER_FUNCTIONS.has(fn)) {
      const arg = args[0];
      if (!arg || (arg.name !== 'MatrixSelector' && arg.name !== 'SubqueryExpr')) out.problems.push(`${text(node)}: ${fn.toLowerCase()}() takes a range vector`);
      else out.problems.push(...this.counterOnly(arg, text).map((m) => `${fn.toLowerCase()}() over ${m}, which is not a counter`));
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
  private counterOnly(node: SyntaxNode, text: (n: SyntaxNode) => string): string[] {
    const names = [node, ...descendants(node, 'VectorSelector')].filter((n) => n.name === 'VectorSelector').map((n) => selectorOf(n, text, []).metric);
    return names.filter((name) => this.exported.has(name) && !this.counterLike.has(name));
  }
}

/** `{{label}}` in a legend, `$labels.label` in an alert annotation. */
export function templateLabels(template: string): string[] {
  return [...template.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}|\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => (m[1] ?? m[2])!);
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard (JSON model) and the Prometheus rules file, as far as the checks read them.

export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ refId?: string; expr?: string; legendFormat?: string }>;
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; definition?: string; query?: string | { query?: string } }> };
}

/** Every panel, those inside rows included. */
export function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

export function readDashboard(path: string): Dashboard {
  return JSON.parse(readFileSync(path, 'utf8')) as Dashboard;
}

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every rule of every group of a Prometheus rules file. */
export function alertRules(path: string): Rule[] {
  const doc = parseYaml(readFileSync(path, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}
