// An in-memory storage backend, for in-process tests of the HTTP layer and anything else that needs
// a Storage without disks or servers (like distribution's inmemory driver). Not for production:
// everything is held in RAM and lost when the process exits.
//
// It keeps layout.ts's layout in Maps keyed by location (`blobs/sha256/<hex>` → bytes and time,
// `<key>.json` → JSON text), so it stores what the filesystem and S3 backends do, and the same
// layout functions check every digest, key and prefix. Entries are never mutated, only
// replaced, so a stream opened before a delete or an overwrite keeps serving what it opened.
// A write in progress shows as a temporary item (`tmp/<name>`, its bytes so far) as on the other
// backends, and removing that item fails the write, as a deleted temp file or aborted upload does.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import {
  BLOB_PREFIX,
  assertDigest,
  assertTemporaryLocation,
  blobLocation,
  digestOfBlobName,
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

/** Reads hand out copies in chunks of this size, so no reader can change the stored bytes. */
const READ_CHUNK_SIZE = 64 * 1024;

interface StoredBlob {
  bytes: Buffer;
  modified: Date;
}

/** A write in progress: what it has received so far. */
interface PendingWrite {
  size: number;
  modified: Date;
}

/** Location order as the filesystem backend lists it: depth first, each directory's names sorted. */
function compareLocations(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i] as string;
    const y = bs[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return as.length - bs.length;
}

export class MemoryStorage implements Storage {
  private readonly blobs = new Map<string, StoredBlob>();
  private readonly records = new Map<string, string>();
  /** Writes in progress by temporary location; an entry removed by removeTemporary fails its write. */
  private readonly pending = new Map<string, PendingWrite>();

  async writeBlob(data: AsyncIterable<Uint8Array>, expected?: Digest): Promise<WrittenBlob> {
    if (expected !== undefined) assertDigest(expected);
    const temp = tempLocation();
    const progress: PendingWrite = { size: 0, modified: new Date() };
    this.pending.set(temp, progress);
    const stillPending = () => {
      if (this.pending.get(temp) !== progress) throw new Error(`writeBlob: its temporary data ${temp} was removed`);
    };
    try {
      const hash = createHash('sha256');
      const parts: Buffer[] = [];
      let size = 0;
      for await (const chunk of data) {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('writeBlob: chunks must be Uint8Array');
        stillPending();
        hash.update(chunk);
        parts.push(Buffer.from(chunk)); // a copy: the source may reuse its chunk once yielded
        size += chunk.length;
        progress.size = size;
        progress.modified = new Date();
      }
      stillPending();
      const digest: Digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && digest !== expected) throw new DigestMismatchError(expected, digest);

      // Nothing awaits from here on, so among concurrent writers of the same bytes exactly one creates.
      const location = blobLocation(digest);
      const existing = this.blobs.get(location);
      // Already stored: refresh its time, so garbage collection sees it as just written.
      this.blobs.set(location, { bytes: existing?.bytes ?? Buffer.concat(parts, size), modified: new Date() });
      return { digest, size, created: existing === undefined };
    } finally {
      if (this.pending.get(temp) === progress) this.pending.delete(temp);
    }
  }

  async statBlob(digest: Digest): Promise<BlobStat | undefined> {
    const blob = this.blobs.get(blobLocation(digest));
    return blob === undefined ? undefined : { digest, size: blob.bytes.length };
  }

  async readBlob(digest: Digest, range?: ByteRange): Promise<Readable | undefined> {
    const blob = this.blobs.get(blobLocation(digest));
    if (blob === undefined) return undefined;
    const size = blob.bytes.length;
    let bytes = blob.bytes;
    if (range !== undefined) {
      const { start, end } = range;
      const valid = Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end < size;
      if (!valid) throw new RangeNotSatisfiableError(range, size);
      bytes = bytes.subarray(start, end + 1);
    }
    return Readable.from(copiedChunks(bytes));
  }

  async deleteBlob(digest: Digest): Promise<boolean> {
    return this.blobs.delete(blobLocation(digest));
  }

  async *listBlobs(): AsyncIterable<ListedBlob> {
    // A snapshot, sorted: writes and deletes during the listing do not disturb it.
    for (const [location, blob] of [...this.blobs].sort(([a], [b]) => compareLocations(a, b))) {
      const digest = digestOfBlobName(location.slice(BLOB_PREFIX.length));
      if (digest !== undefined) yield { digest, size: blob.bytes.length, modified: blob.modified };
    }
  }

  async *listTemporary(): AsyncIterable<TemporaryItem> {
    for (const [location, write] of [...this.pending].sort(([a], [b]) => compareLocations(a, b))) {
      yield { location, size: write.size, modified: write.modified };
    }
  }

  async removeTemporary(item: TemporaryRef, modifiedBefore: Date): Promise<boolean> {
    assertTemporaryLocation(item.location);
    if (item.uploadId !== undefined) throw new Error(`not a temporary item of this store: an upload to ${item.location}`);
    const write = this.pending.get(item.location);
    if (write === undefined || write.modified.getTime() >= modifiedBefore.getTime()) return false;
    return this.pending.delete(item.location);
  }

  async putRecord(key: RecordKey, value: unknown): Promise<void> {
    const location = recordLocation(key);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('putRecord: value cannot be written as JSON');
    this.records.set(location, json);
  }

  async getRecord(key: RecordKey): Promise<unknown> {
    const json = this.records.get(recordLocation(key));
    return json === undefined ? undefined : (JSON.parse(json) as unknown);
  }

  async deleteRecord(key: RecordKey): Promise<boolean> {
    return this.records.delete(recordLocation(key));
  }

  /** Keys starting with `prefix` (a plain string prefix), in the order the filesystem backend lists them. */
  async *listRecords(prefix: string): AsyncIterable<RecordKey> {
    splitRecordPrefix(prefix); // throws for a prefix no key could start with
    for (const location of [...this.records.keys()].sort(compareLocations)) {
      const key = recordKeyAt(location, prefix);
      if (key !== undefined) yield key;
    }
  }
}

/** `bytes` as fresh copies of at most READ_CHUNK_SIZE bytes each. */
function* copiedChunks(bytes: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += READ_CHUNK_SIZE) {
    yield Buffer.from(bytes.subarray(offset, offset + READ_CHUNK_SIZE));
  }
}
