// The storage layout every backend shares, so a store can move between backends and one rule
// guards every name: blobs under `blobs/sha256/<hex>`, records as `<key>.json`, in-progress writes
// under `tmp/`. Backends turn these `/`-separated locations into file paths or object keys and
// decide nothing about names themselves; that is what keeps a key from ever reaching blobs/ or
// tmp/ or escaping the store.

import { randomBytes } from 'node:crypto';
import { digestHex, isDigest, type Digest } from '../digest.js';
import { displayValue } from '../display.js';
import { isKey } from '../keys.js';
import type { RecordKey } from './storage.js';

/** Where blobs live: `blobs/sha256/<hex>`. */
export const BLOB_PREFIX = 'blobs/sha256/';
/** Where writes are staged until complete and verified; nothing here is ever read as data. */
export const TEMP_PREFIX = 'tmp/';
export const RECORD_SUFFIX = '.json';

const KEY_SEGMENT = /^[A-Za-z0-9._-]+$/;
/** First key segments the layout uses itself. */
const RESERVED_TOP_SEGMENTS = new Set([BLOB_PREFIX.split('/')[0], TEMP_PREFIX.split('/')[0]]);
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

/** `blobs/sha256/<hex>`. Throws unless `digest` is a valid digest. */
export function blobLocation(digest: Digest): string {
  assertDigest(digest);
  return `${BLOB_PREFIX}${digestHex(digest)}`;
}

/** The digest a name found under `blobs/sha256/` stands for, or undefined for a stray name. */
export function digestOfBlobName(name: string): Digest | undefined {
  return isKey(name) ? `sha256:${name}` : undefined;
}

/** `<key>.json`. Throws unless `key` is a record key. */
export function recordLocation(key: RecordKey): string {
  assertRecordKey(key);
  return `${key}${RECORD_SUFFIX}`;
}

/** The record key stored at `location` when it is a valid one starting with `prefix`, else undefined. */
export function recordKeyAt(location: string, prefix: string): RecordKey | undefined {
  if (!location.endsWith(RECORD_SUFFIX)) return undefined;
  const key = location.slice(0, -RECORD_SUFFIX.length);
  return key.startsWith(prefix) && recordKeyProblem(key) === undefined ? key : undefined;
}

/** Whether a listing may descend into the directory `dirKey`: it can hold records, under `prefix`. */
export function mayHoldRecords(dirKey: string, prefix: string): boolean {
  const within = `${dirKey}/`;
  return (within.startsWith(prefix) || prefix.startsWith(within)) && recordKeyProblem(`${dirKey}/x`) === undefined;
}

/**
 * Splits a listing prefix (a key, a key's beginning, or empty: `manifests/`, `manifests/ab`) into
 * the directory to list and the partial name after it. Throws for a prefix no key could start with.
 */
export function splitRecordPrefix(prefix: string): { dirKey: string; partial: string } {
  const slash = prefix.lastIndexOf('/');
  const dirKey = slash === -1 ? '' : prefix.slice(0, slash);
  const partial = prefix.slice(slash + 1);
  if (dirKey !== '') assertRecordKey(dirKey);
  if (partial !== '' && !KEY_SEGMENT.test(partial)) throw new Error(`invalid record key prefix ${displayValue(prefix)}`);
  return { dirKey, partial };
}

/** A fresh, unused name in the temporary area: `tmp/<pid>-<random>`. */
export function tempLocation(): string {
  return `${TEMP_PREFIX}${process.pid}-${randomBytes(12).toString('hex')}`;
}

/**
 * Whether `location` lies in the temporary area: `tmp/` followed by `/`-separated segments of
 * `[A-Za-z0-9._-]`, none of them `.` or `..`. Only such locations may be listed or removed as
 * temporary items, so no name handed to a removal can reach a blob, a record or leave the store.
 */
export function isTemporaryLocation(location: string): boolean {
  if (typeof location !== 'string' || !location.startsWith(TEMP_PREFIX) || location.length > MAX_KEY_LENGTH) return false;
  const segments = location.slice(TEMP_PREFIX.length).split('/');
  return segments.every((segment) => KEY_SEGMENT.test(segment) && segment !== '.' && segment !== '..');
}

export function assertTemporaryLocation(location: string): void {
  if (!isTemporaryLocation(location)) throw new Error(`not a temporary location: ${displayValue(String(location))}`);
}
