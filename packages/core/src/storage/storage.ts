// The one storage interface that every backend implements (docs/design.md §5). Workers write blobs and
// records through it; API replicas read them. Content-addressed blobs make concurrent writers of
// the same bytes harmless, and a blob becomes visible only once complete and verified, so a
// reader can never see a partial layer.

import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';

export interface BlobStat {
  digest: Digest;
  size: number;
}

export interface ListedBlob extends BlobStat {
  /** When the blob was last written; garbage collection keeps young blobs. */
  modified: Date;
}

/** An inclusive byte range, as in an HTTP Range header (`bytes=start-end`). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface WrittenBlob extends BlobStat {
  /** False when an identical blob was already stored and nothing new became visible. */
  created: boolean;
}

/**
 * What a write leaves in the temporary area while it runs, and forever if its writer dies: a staged
 * file or object under `tmp/`, or (S3) an incomplete multipart upload. Never read as data.
 */
export interface TemporaryItem {
  /** `tmp/<name>`; for a multipart upload, the key it uploads to (under `tmp/` or `blobs/sha256/`). */
  location: string;
  /** An incomplete S3 multipart upload's id; absent for files and objects. */
  uploadId?: string;
  /** Bytes it holds (for an upload, its parts so far). */
  size: number;
  /** When it was last written to: a writer in progress keeps this recent. */
  modified: Date;
}

/** Names one temporary item for removal: what a listing gave. */
export type TemporaryRef = Pick<TemporaryItem, 'location' | 'uploadId'>;

/**
 * Metadata records live beside the blobs: `manifests/<imageKey>`, `layers/<layerKey>`.
 * A key is a `/`-separated path of `[A-Za-z0-9._-]` segments; backends store it as `<key>.json`.
 */
export type RecordKey = string;

export interface Storage {
  /**
   * Streams `data` into a blob while hashing it. The blob appears under its digest only when the
   * stream has ended and, if `expected` is given, the bytes match it; otherwise it throws
   * {@link DigestMismatchError} and nothing becomes visible.
   */
  writeBlob(data: AsyncIterable<Uint8Array>, expected?: Digest): Promise<WrittenBlob>;

  statBlob(digest: Digest): Promise<BlobStat | undefined>;

  /** The blob's bytes (all, or an inclusive range within its size); undefined when missing. */
  readBlob(digest: Digest, range?: ByteRange): Promise<Readable | undefined>;

  /** True when something was deleted. */
  deleteBlob(digest: Digest): Promise<boolean>;

  listBlobs(): AsyncIterable<ListedBlob>;

  /** Writes a JSON record atomically: readers see the old or the new value, never a mix. */
  putRecord(key: RecordKey, value: unknown): Promise<void>;

  /** The parsed JSON record; undefined when missing. Callers validate it with zod. */
  getRecord(key: RecordKey): Promise<unknown>;

  deleteRecord(key: RecordKey): Promise<boolean>;

  /** Keys of the records under a prefix such as `manifests/`. */
  listRecords(prefix: string): AsyncIterable<RecordKey>;

  /** What the temporary area holds: writes in progress, and what writers that died left behind. */
  listTemporary(): AsyncIterable<TemporaryItem>;

  /**
   * Removes one temporary item if it is still there and was last written before `modifiedBefore`
   * (checked again just before removing, so a write that went on since is left alone); true when
   * something was removed. A write whose temporary item is removed fails, and nothing of it
   * becomes visible. Throws for anything outside the temporary area: it never removes a blob or
   * a record.
   */
  removeTemporary(item: TemporaryRef, modifiedBefore: Date): Promise<boolean>;

  /**
   * Optional: a URL from which any HTTP client can GET the blob itself for the next
   * `expiresInSeconds` (Range requests included), or undefined when the blob does not exist.
   * Backends that can serve blobs without the API in the path implement it (S3: a presigned GET
   * URL); the API then answers blob GETs with a redirect there instead of streaming the bytes.
   */
  blobUrl?(digest: Digest, expiresInSeconds: number): Promise<string | undefined>;
}

export class DigestMismatchError extends Error {
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
  ) {
    super(`blob content does not match its digest: expected ${expected}, got ${actual}`);
  }
}

export class RangeNotSatisfiableError extends Error {
  constructor(
    readonly range: ByteRange,
    readonly size: number,
  ) {
    super(`range ${range.start}-${range.end} is outside a blob of ${size} bytes`);
  }
}
