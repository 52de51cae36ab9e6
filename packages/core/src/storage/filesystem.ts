// The filesystem storage backend (STORAGE_PATH): blobs and records as plain files under one root.
// Durability and visibility come from the filesystem's own guarantees: every write goes to a
// temp file in `tmp/` (same filesystem), is fsynced, and only then is linked or renamed into place,
// so a reader sees a complete, verified blob or nothing. A writer that dies leaves its temp file;
// listTemporary and removeTemporary let gc and fsck find and remove it (maintenance/). Keys and digests become paths, so both are
// checked here strictly enough that no input can name a file outside the root.
//
// The layout under the root is layout.ts's (blobs/sha256/<hex>, <record key>.json, tmp/); here
// its locations only become paths.

import { createHash } from 'node:crypto';
import { link, lstat, mkdir, open, opendir, readdir, readFile, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import {
  BLOB_PREFIX,
  TEMP_PREFIX,
  assertDigest,
  assertTemporaryLocation,
  blobLocation,
  digestOfBlobName,
  isTemporaryLocation,
  mayHoldRecords,
  recordKeyAt,
  recordLocation,
  splitRecordPrefix,
  tempLocation,
} from './layout.js';
import {
  DigestMismatchError,
  RangeNotSatisfiableError,
  type BlobStat,
  type ByteRange,
  type ListedBlob,
  type RecordKey,
  type Storage,
  type TemporaryItem,
  type TemporaryRef,
  type WrittenBlob,
} from './storage.js';

/** Small chunks are gathered into writes of this size; it bounds the memory one write holds. */
const WRITE_BUFFER_SIZE = 1024 * 1024;


function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

/** Runs `action`, turning "no such file" (ENOENT, or ENOTDIR on the way) into `fallback`. */
async function ifExists<T, F>(action: () => Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await action();
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return fallback;
    throw error;
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** Writes all of `buffer[0, length)`; a write may take fewer bytes than offered. */
async function writeAll(file: FileHandle, buffer: Uint8Array, length: number): Promise<void> {
  let offset = 0;
  while (offset < length) {
    const { bytesWritten } = await file.write(buffer, offset, length - offset);
    offset += bytesWritten;
  }
}

/** Makes a directory entry (a new or renamed file) durable. */
async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } catch (error) {
    // Some filesystems cannot fsync a directory; the entry is then as durable as they allow.
    if (errorCode(error) !== 'EINVAL' && errorCode(error) !== 'EISDIR') throw error;
  } finally {
    await dir.close();
  }
}

function checkRange(range: ByteRange, size: number): void {
  const { start, end } = range;
  const valid = Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end < size;
  if (!valid) throw new RangeNotSatisfiableError(range, size);
}

/**
 * Blobs are read in 256 KiB chunks: Node's default 64 KiB costs about half the throughput of a
 * streamed layer in per-chunk overhead, while 1 MiB chunks would hold a megabyte or two per open
 * stream (hundreds of concurrent downloads) for little more speed (docs/design.md §10).
 */
const READ_CHUNK_BYTES = 256 * 1024;

export class FilesystemStorage implements Storage {
  readonly rootDir: string;
  private readonly blobDir: string;
  private readonly tmpDir: string;

  constructor(rootDir: string) {
    if (typeof rootDir !== 'string' || rootDir.length === 0) throw new Error('FilesystemStorage: rootDir is empty');
    this.rootDir = rootDir;
    this.blobDir = this.pathOf(BLOB_PREFIX);
    this.tmpDir = this.pathOf(TEMP_PREFIX);
  }

  async writeBlob(data: AsyncIterable<Uint8Array>, expected?: Digest): Promise<WrittenBlob> {
    if (expected !== undefined) assertDigest(expected);
    const tempPath = await this.tempPath();
    let file: FileHandle | undefined = await open(tempPath, 'wx', 0o644);
    try {
      const hash = createHash('sha256');
      let size = 0;
      // Copying small chunks into one buffer gathers them into fewer writes, and means the source may
      // reuse its chunks once yielded. Each write is awaited before the next chunk is pulled: that is
      // the backpressure, and at most this buffer and one chunk are held at a time.
      const buffer = Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
      let buffered = 0;
      for await (const chunk of data) {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('writeBlob: chunks must be Uint8Array');
        hash.update(chunk);
        size += chunk.length;
        if (buffered + chunk.length > WRITE_BUFFER_SIZE) {
          await writeAll(file, buffer, buffered);
          buffered = 0;
        }
        if (chunk.length >= WRITE_BUFFER_SIZE) {
          await writeAll(file, chunk, chunk.length);
        } else {
          buffer.set(chunk, buffered);
          buffered += chunk.length;
        }
      }
      await writeAll(file, buffer, buffered);
      await file.sync();
      await file.close();
      file = undefined;

      const digest: Digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && digest !== expected) throw new DigestMismatchError(expected, digest);
      const created = await this.publishBlob(tempPath, digest);
      return { digest, size, created };
    } finally {
      await file?.close().catch(() => undefined);
      // After a successful publish the temp name is only a second link (or already renamed away).
      await removeQuietly(tempPath);
    }
  }

  /**
   * Moves a complete, verified temp file to its blob path. A hard link refuses to replace an
   * existing file, so among concurrent writers of the same bytes exactly one reports `created`.
   * Where hard links are unsupported, it falls back to rename (atomic, but then two racing writers
   * may both report `created`; the content is identical either way).
   */
  private async publishBlob(tempPath: string, digest: Digest): Promise<boolean> {
    const target = this.blobPath(digest);
    await mkdir(this.blobDir, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tempPath, target);
        await syncDirectory(this.blobDir);
        return true;
      } catch (error) {
        const code = errorCode(error);
        if (code === 'EEXIST') {
          // Already stored: refresh its time, so garbage collection sees it as just written.
          // If it vanished in between (deleted), go round and link ours.
          const now = new Date();
          const touched = await ifExists(() => utimes(target, now, now).then(() => true), false);
          if (touched || attempt >= 3) return false;
          continue;
        }
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK' || code === 'ENOSYS') {
          const existed = (await ifExists(() => stat(target), undefined)) !== undefined;
          if (!existed) {
            await rename(tempPath, target);
            await syncDirectory(this.blobDir);
          }
          return !existed;
        }
        throw error;
      }
    }
  }

  async statBlob(digest: Digest): Promise<BlobStat | undefined> {
    const stats = await ifExists(() => stat(this.blobPath(digest)), undefined);
    if (stats === undefined || !stats.isFile()) return undefined;
    return { digest, size: stats.size };
  }

  async readBlob(digest: Digest, range?: ByteRange): Promise<Readable | undefined> {
    // Opening first means a concurrent delete cannot strike between the size check and the read.
    const file = await ifExists(() => open(this.blobPath(digest), 'r'), undefined);
    if (file === undefined) return undefined;
    try {
      const stats = await file.stat();
      if (!stats.isFile()) {
        await file.close();
        return undefined;
      }
      if (range !== undefined) checkRange(range, stats.size);
    } catch (error) {
      await file.close();
      throw error;
    }
    // The stream owns the handle from here and closes it when it ends or is destroyed.
    return file.createReadStream({ highWaterMark: READ_CHUNK_BYTES, ...(range ? { start: range.start, end: range.end } : {}) });
  }

  async deleteBlob(digest: Digest): Promise<boolean> {
    return ifExists(() => unlink(this.blobPath(digest)).then(() => true), false);
  }

  async *listBlobs(): AsyncIterable<ListedBlob> {
    const dir = await ifExists(() => opendir(this.blobDir), undefined);
    if (dir === undefined) return;
    for await (const entry of dir) {
      const digest = digestOfBlobName(entry.name);
      if (digest === undefined) continue;
      const stats = await ifExists(() => stat(join(this.blobDir, entry.name)), undefined);
      if (stats === undefined || !stats.isFile()) continue;
      yield { digest, size: stats.size, modified: stats.mtime };
    }
  }

  /**
   * The files directly in `tmp/` (every write stages exactly one there), with their size and mtime;
   * a writer in progress keeps its file's mtime recent. Symbolic links are listed as themselves.
   */
  async *listTemporary(): AsyncIterable<TemporaryItem> {
    const dir = await ifExists(() => opendir(this.tmpDir), undefined);
    if (dir === undefined) return;
    for await (const entry of dir) {
      const location = `${TEMP_PREFIX}${entry.name}`;
      if (!isTemporaryLocation(location)) continue;
      const stats = await ifExists(() => lstat(join(this.tmpDir, entry.name)), undefined);
      if (stats === undefined || stats.isDirectory()) continue;
      yield { location, size: stats.size, modified: stats.mtime };
    }
  }

  /**
   * Unlinks one file directly in `tmp/` (never what a link points at) if its mtime is still before
   * `modifiedBefore`. A writer still holding it open then fails to link it into place.
   */
  async removeTemporary(item: TemporaryRef, modifiedBefore: Date): Promise<boolean> {
    assertTemporaryLocation(item.location);
    // Only what listTemporary lists: no nested names, which could pass through a link in tmp/.
    if (item.location.indexOf('/', TEMP_PREFIX.length) !== -1 || item.uploadId !== undefined) {
      throw new Error(`not a temporary file of this store: ${item.location}${item.uploadId !== undefined ? ' (an upload)' : ''}`);
    }
    const path = this.pathOf(item.location);
    const stats = await ifExists(() => lstat(path), undefined);
    if (stats === undefined || stats.isDirectory() || stats.mtime.getTime() >= modifiedBefore.getTime()) return false;
    return ifExists(() => unlink(path).then(() => true), false);
  }

  async putRecord(key: RecordKey, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('putRecord: value cannot be written as JSON');
    const target = this.recordPath(key);
    const tempPath = await this.tempPath();
    try {
      const file = await open(tempPath, 'wx', 0o644);
      try {
        await file.writeFile(json, 'utf8');
        await file.sync();
      } finally {
        await file.close();
      }
      await mkdir(dirname(target), { recursive: true });
      await rename(tempPath, target);
      await syncDirectory(dirname(target));
    } finally {
      await removeQuietly(tempPath);
    }
  }

  async getRecord(key: RecordKey): Promise<unknown> {
    const text = await ifExists(() => readFile(this.recordPath(key), 'utf8'), undefined);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  async deleteRecord(key: RecordKey): Promise<boolean> {
    return ifExists(() => unlink(this.recordPath(key)).then(() => true), false);
  }

  /**
   * Keys starting with `prefix` (plain string prefix, as S3 lists: `manifests/` or `manifests/ab`),
   * depth first with each directory's entries sorted. The prefix must itself be a key, a key's
   * beginning, or empty.
   */
  async *listRecords(prefix: string): AsyncIterable<RecordKey> {
    yield* this.walkRecords(splitRecordPrefix(prefix).dirKey, prefix);
  }

  private async *walkRecords(dirKey: string, prefix: string): AsyncGenerator<RecordKey> {
    const dirPath = dirKey === '' ? this.rootDir : join(this.rootDir, ...dirKey.split('/'));
    const entries = await ifExists(() => readdir(dirPath, { withFileTypes: true }), undefined);
    if (entries === undefined) return;
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const childKey = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        if (mayHoldRecords(childKey, prefix)) yield* this.walkRecords(childKey, prefix);
      } else if (entry.isFile()) {
        const key = recordKeyAt(childKey, prefix);
        if (key !== undefined) yield key;
      }
    }
  }

  /** A layout location (`/`-separated, already checked by layout.ts) as a path under the root. */
  private pathOf(location: string): string {
    return join(this.rootDir, ...location.split('/'));
  }

  private blobPath(digest: Digest): string {
    return this.pathOf(blobLocation(digest));
  }

  private recordPath(key: RecordKey): string {
    return this.pathOf(recordLocation(key));
  }

  /** A fresh, unused temp file name (the file is created exclusively by the caller). */
  private async tempPath(): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return this.pathOf(tempLocation());
  }
}
