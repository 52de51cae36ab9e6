// Attribute paths: the grammar of one package name (`git`, `python3Packages.numpy`). A name travels
// from a URL into a Nix evaluation, so it is held to a strict grammar that cannot carry Nix syntax
// (quotes, `${`, `..`), shell syntax, whitespace or look-alike characters. Image names and build
// job data both validate with this one function, so what the API accepts is what the worker accepts.
import { z } from 'zod';
import { displayValue } from './display.js';
import { RegistryError } from './registry-errors.js';

/** Longest accepted attribute path, in characters. */
export const MAX_ATTRIBUTE_PATH_LENGTH = 100;

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;

/**
 * Why `value` is not an attribute path, as a short phrase ("contains a quote"), or undefined if it
 * is one. An attribute path is segments joined by single dots; each segment matches
 * `[A-Za-z0-9_][A-Za-z0-9_-]*`; at most 100 characters in all.
 */
export function attributePathProblem(value: string): string | undefined {
  if (value.length === 0) return 'is empty';
  if (value.length > MAX_ATTRIBUTE_PATH_LENGTH) {
    return `is longer than ${MAX_ATTRIBUTE_PATH_LENGTH} characters`;
  }
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ch = value[i] as string;
    if (/[A-Za-z0-9_.-]/.test(ch)) continue;
    if (c > 0x7e && c !== 0x7f) return 'contains a non-ASCII character';
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') return 'contains whitespace';
    if (c < 0x20 || c === 0x7f) return 'contains a control character';
    if (ch === '"' || ch === "'" || ch === '`') return 'contains a quote';
    if (ch === '$' && value[i + 1] === '{') return 'contains "${" (Nix interpolation)';
    return `contains ${JSON.stringify(ch)} (allowed: letters, digits, "_", "-" and "." between segments)`;
  }
  const segments = value.split('.');
  if (segments.some((s) => s.length === 0)) {
    return 'has an empty attribute segment (a leading, trailing or doubled ".")';
  }
  if (segments.some((s) => !SEGMENT.test(s))) {
    return 'has a segment starting with "-"';
  }
  return undefined;
}

export function isAttributePath(value: unknown): value is string {
  return typeof value === 'string' && attributePathProblem(value) === undefined;
}

/** Throws RegistryError NAME_INVALID (naming the value and the reason) unless `value` is an attribute path. */
export function assertAttributePath(value: string): void {
  const problem = attributePathProblem(value);
  if (problem !== undefined) {
    throw new RegistryError('NAME_INVALID', `invalid attribute path ${displayValue(value)}: ${problem}`, {
      component: displayValue(value),
      reason: problem,
    });
  }
}

/** Zod schema for an attribute path; the issue message says what is wrong. */
export const AttributePathSchema = z.string().superRefine((value, ctx) => {
  const problem = attributePathProblem(value);
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: `attribute path ${problem}`, input: value });
  }
});
