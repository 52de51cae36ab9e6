// The storage layout every backend shares, so a store can move between backends: blobs under
// `blobs/sha256/<hex>`, records as `<key>.json`, in-progress writes under `tmp/`; and the one rule
// for record keys, which keeps a key from ever reaching blobs/ or tmp/ or escaping the store.

import { isDigest, type Digest } from '../digest.js';
import { displayValue } from '../display.js';
import type { RecordKey } from './storage.js';

export const HEX = /^[a-f0-9]{64}$/;
export const KEY_SEGMENT = /^[A-Za-z0-9._-]+$/;
/** First key segments the layout uses itself. */
const RESERVED_TOP_SEGMENTS = new Set(['blobs', 'tmp']);
export const RECORD_SUFFIX = '.json';
/** Keeps `<segment>.json` under the usual 255-byte file name limit, and keys short. */
const MAX_SEGMENT_LENGTH = 200;
const MAX_KEY_LENGTH = 1024;

/**
 * Why `key` is not a record key, or undefined if it is one: `/`-separated segments of
 * `[A-Za-z0-9._-]`, no empty, `.` or `..` segment, no leading or trailing `/`, not under `blobs/`
 * or `tmp/`, and no directory segment ending in `.json` (it would collide with a record).
 */
export function recordKeyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'is empty';
  if (key.length > MAX_KEY_LENGTH) return `is longer than ${MAX_KEY_LENGTH} characters`;
  const segments = key.split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment.length === 0) return 'has an empty segment (a leading, trailing or doubled "/")';
    if (segment === '.' || segment === '..') return 'has a "." or ".." segment';
    if (!KEY_SEGMENT.test(segment)) return 'has a character outside [A-Za-z0-9._-]';
    if (segment.length > MAX_SEGMENT_LENGTH) return `has a segment longer than ${MAX_SEGMENT_LENGTH} characters`;
    if (i < segments.length - 1 && segment.endsWith(RECORD_SUFFIX)) return 'has a directory segment ending in ".json"';
  }
  if (RESERVED_TOP_SEGMENTS.has(segments[0] as string)) return `is under "${segments[0]}/", which storage uses itself`;
  return undefined;
}

export function assertRecordKey(key: RecordKey): void {
  const problem = recordKeyProblem(key);
  if (problem !== undefined) throw new Error(`invalid record key ${displayValue(String(key))}: ${problem}`);
}

export function assertDigest(digest: Digest): void {
  if (!isDigest(digest)) throw new Error(`invalid digest ${displayValue(String(digest))}`);
}
