// The S3-compatible storage backend (NIXERY_STORAGE_BACKEND=s3): the same blobs and records as the
// filesystem backend, as objects in one bucket, so any number of API replicas and workers on any
// machines share one store. It keeps the filesystem backend's rules, which the shared conformance
// suite checks against both: a blob is visible under its digest only when complete and verified,
// concurrent writers of the same bytes all succeed, and no record key can leave its namespace.
//
// The layout in the bucket is layout.ts's, object key for location, so keys valid on one backend
// are valid on the other. Anything under tmp/ older than a day is garbage from a writer that died:
// `nixyard gc` removes it through listTemporary/removeTemporary, incomplete multipart uploads
// included, and a bucket lifecycle rule can expire it as well (docs/storage.md).
//
// Why a blob is uploaded to tmp/ and then copied to its name, instead of one verified PUT:
// - The name is the digest, and a worker streaming tar → gzip → storage learns the digest only at
//   the end of the stream. S3 has no rename, so the bytes must go somewhere first; a server-side
//   CopyObject is the rename, and it is atomic: readers of blobs/sha256/<hex> see nothing or all.
// - S3's own integrity checksums cannot do the job either. They are computed by the SDK over the
//   bytes it sends (CRC32 by default here), not compared with a digest we were promised; a SHA-256
//   *full-object* checksum exists only for single PUTs (at most 5 GiB, and we would have to know the
//   digest before the first byte), while multipart uploads get SHA-256 only as a checksum of part
//   checksums. S3-compatible servers differ: s3rver, which the tests run against, implements no
//   flexible checksums at all (it ignores x-amz-checksum-* headers and never verifies
//   x-amz-content-sha256), so a design that relied on the server to reject wrong bytes would
//   publish them there silently. Here the verification is ours: we hash what we stream and compare
//   before anything is copied to its name, whichever server is behind the endpoint.
// The staging object is deleted in every outcome. An interrupted multipart upload is aborted
// (lib-storage does it); only a crash of the writer itself can leave tmp/ objects or incomplete
// uploads behind, which a lifecycle rule cleans up.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import type {
  CompletedPart,
  ListMultipartUploadsCommandOutput,
  ListObjectsV2CommandOutput,
  ListPartsCommandOutput,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { Digest } from '../digest.js';
import { displayValue } from '../display.js';
import {
  BLOB_PREFIX,
  TEMP_PREFIX,
  assertDigest,
  assertRecordKey,
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

// The AWS SDK costs a role about 0.3 s of start-up and 20 MB of memory, so it is loaded on first use
// (an S3Storage's constructor), never with filesystem storage. The packages have no "exports", so
// require loads the very CommonJS modules an import would.
type Sdk = typeof import('@aws-sdk/client-s3') & typeof import('@aws-sdk/lib-storage') & typeof import('@aws-sdk/s3-request-presigner');
let loadedSdk: Sdk | undefined;
const sdk = new Proxy({} as Sdk, {
  get(_, name) {
    if (!loadedSdk) {
      const require = createRequire(import.meta.url);
      loadedSdk = {
        ...(require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3')),
        ...(require('@aws-sdk/lib-storage') as typeof import('@aws-sdk/lib-storage')),
        ...(require('@aws-sdk/s3-request-presigner') as typeof import('@aws-sdk/s3-request-presigner')),
      };
    }
    return loadedSdk[name as keyof Sdk];
  },
});

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const BLOB_CONTENT_TYPE = 'application/octet-stream';
const RECORD_CONTENT_TYPE = 'application/json';

/**
 * lib-storage's part size, S3's minimum. Parts are the unit of memory: a writer holds about
 * queueSize + 2 of them (the parts in flight, the one being gathered, and lib-storage's copy of it),
 * so 5 MiB and 2 keep one blob's upload near 20 MiB. 10,000 parts of 5 MiB allow blobs up to
 * 48.8 GiB. Two parts in flight keep ahead of the usual producer, gzip at level 6, which packs
 * about 30 MB/s of tar per core (README).
 */
const DEFAULT_PART_SIZE = 5 * MiB;
/** Parts uploaded at once by one writer. */
const DEFAULT_QUEUE_SIZE = 2;
/** CopyObject copies at most 5 GiB in one request; larger blobs are copied part by part. */
const SINGLE_COPY_LIMIT = 5 * GiB;
const DEFAULT_COPY_PART_SIZE = 512 * MiB;
const COPY_CONCURRENCY = 4;
const MAX_PARTS = 10_000;
/** SigV4 presigned URLs live at most a week. */
const MAX_URL_SECONDS = 7 * 24 * 3600;

export interface S3StorageOptions {
  /** A DNS-style bucket name (3-63 characters of a-z, 0-9, "." and "-"); the bucket must exist. */
  bucket: string;
  region: string;
  /** An S3-compatible server (MinIO, Ceph, s3rver...); undefined means AWS itself. */
  endpoint?: string | undefined;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Default: the SDK's standard provider chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles...). */
  credentials?: S3ClientConfig['credentials'];
  /** Multipart part size for blob uploads (at least 5 MiB, the default: blobs up to 48.8 GiB). */
  partSizeBytes?: number;
  /** Parts of one blob uploaded concurrently (default 2). */
  queueSize?: number;
  /** Keys per ListObjectsV2 page (default: the server's, 1000 on S3); for tests of pagination. */
  listPageSize?: number;
  /** Blobs larger than this are copied with UploadPartCopy (default, and at most, 5 GiB). */
  multipartCopyThresholdBytes?: number;
  /** Part size of a multipart copy (default 512 MiB, raised to stay within 10,000 parts). */
  copyPartSizeBytes?: number;
  /** A client to use instead of one built from the options above (tests). */
  client?: S3Client;
}

// ---- names ----



/** DNS-compatible bucket names, as config.ts accepts them for S3_BUCKET. */
function bucketNameProblem(name: string): string | undefined {
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
    return 'expected 3-63 characters of a-z, 0-9, "." and "-", starting and ending with a letter or digit';
  }
  if (name.split('.').some((label) => label.length === 0 || label.startsWith('-') || label.endsWith('-'))) {
    return 'has an empty label or one starting or ending with "-"';
  }
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return 'is shaped like an IP address';
  return undefined;
}

// ---- S3 errors ----

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function sdkError(error: unknown): SdkError {
  return typeof error === 'object' && error !== null ? (error as SdkError) : {};
}

/** "No such object": HeadObject's bodiless 404 (NotFound) or a NoSuchKey. A missing bucket is not this. */
function isNotFound(error: unknown): boolean {
  const e = sdkError(error);
  if (e.name === 'NoSuchBucket' || e.Code === 'NoSuchBucket') return false;
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}

/** The server does not implement the operation (s3rver: ListMultipartUploads). */
function isNotImplemented(error: unknown): boolean {
  const e = sdkError(error);
  return e.name === 'NotImplemented' || e.Code === 'NotImplemented' || e.$metadata?.httpStatusCode === 501;
}

/** The multipart upload is gone: completed or aborted. */
function isNoSuchUpload(error: unknown): boolean {
  const e = sdkError(error);
  return e.name === 'NoSuchUpload' || e.Code === 'NoSuchUpload' || e.$metadata?.httpStatusCode === 404;
}

/** Where Nixyard starts multipart uploads: staging objects, and the target of a multipart copy. */
function isUploadLocation(location: string): boolean {
  return isTemporaryLocation(location) || (location.startsWith(BLOB_PREFIX) && digestOfBlobName(location.slice(BLOB_PREFIX.length)) !== undefined);
}

function isInvalidRange(error: unknown): boolean {
  const e = sdkError(error);
  return e.name === 'InvalidRange' || e.$metadata?.httpStatusCode === 416;
}

function rangeShapeIsValid({ start, end }: ByteRange): boolean {
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end;
}

// ---- streaming ----

/** Runs `task` over `items`, at most `limit` at a time, keeping the results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  });
  await Promise.all(runners);
  return results;
}

/** The first `length` bytes of `source`; the source is destroyed once they have passed. */
async function* firstBytes(source: Readable, length: number): AsyncGenerator<Uint8Array> {
  let remaining = length;
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    if (chunk.length >= remaining) {
      yield chunk.subarray(0, remaining);
      return; // leaving the loop destroys the source
    }
    remaining -= chunk.length;
    yield chunk;
  }
}

export class S3Storage implements Storage {
  readonly bucket: string;
  readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly listPageSize: number | undefined;
  private readonly multipartCopyThreshold: number;
  private readonly copyPartSize: number;

  constructor(options: S3StorageOptions) {
    const problem = bucketNameProblem(options.bucket);
    if (problem !== undefined) throw new Error(`S3Storage: bucket name ${displayValue(String(options.bucket))} ${problem}`);
    this.bucket = options.bucket;
    this.partSize = options.partSizeBytes ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < 5 * MiB || this.partSize > 5 * GiB) {
      throw new Error('S3Storage: partSizeBytes must be a whole number from 5 MiB to 5 GiB');
    }
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isSafeInteger(this.queueSize) || this.queueSize < 1) throw new Error('S3Storage: queueSize must be >= 1');
    this.listPageSize = options.listPageSize;
    this.multipartCopyThreshold = Math.min(options.multipartCopyThresholdBytes ?? SINGLE_COPY_LIMIT, SINGLE_COPY_LIMIT);
    this.copyPartSize = options.copyPartSizeBytes ?? DEFAULT_COPY_PART_SIZE;
    if (!Number.isSafeInteger(this.copyPartSize) || this.copyPartSize < 5 * MiB || this.copyPartSize > 5 * GiB) {
      throw new Error('S3Storage: copyPartSizeBytes must be a whole number from 5 MiB to 5 GiB');
    }
    this.client =
      options.client ??
      new sdk.S3Client({
        region: options.region,
        ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
        forcePathStyle: options.forcePathStyle ?? false,
        ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
        // The API streams blobs from S3 to clients, one connection each while they read; the SDK's
        // default of 50 sockets would make the 51st concurrent pull wait for another to finish.
        requestHandler: { httpAgent: { keepAlive: true, maxSockets: 256 }, httpsAgent: { keepAlive: true, maxSockets: 256 } },
      });
  }

  /** Closes the client's idle connections. */
  destroy(): void {
    this.client.destroy();
  }

  // ---- blobs ----

  async writeBlob(data: AsyncIterable<Uint8Array>, expected?: Digest): Promise<WrittenBlob> {
    if (expected !== undefined) assertDigest(expected);
    const stagingKey = tempLocation();
    const hash = createHash('sha256');
    let size = 0;
    let sourceFailed = false;
    let sourceError: unknown;
    // lib-storage gathers what it is given into part buffers and copies each part once, so the
    // chunks pass through uncopied; like a Node stream's, they belong to storage once yielded.
    async function* hashed(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of data) {
          if (!(chunk instanceof Uint8Array)) throw new TypeError('writeBlob: chunks must be Uint8Array');
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      } catch (error) {
        sourceFailed = true;
        sourceError = error;
        throw error;
      }
    }
    // highWaterMark 1: the stream reads at most one chunk ahead of lib-storage.
    const body = Readable.from(hashed(), { highWaterMark: 1 });
    try {
      const upload = new sdk.Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: stagingKey, Body: body, ContentType: BLOB_CONTENT_TYPE },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false, // a failed multipart upload is aborted
      });
      try {
        await upload.done();
      } catch (error) {
        // The source's own error wins over what the upload (or its abort) made of it.
        if (sourceFailed) throw sourceError;
        throw error;
      }

      const digest: Digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && digest !== expected) throw new DigestMismatchError(expected, digest);
      // The server must hold exactly the bytes we hashed before they get the digest's name.
      const staged = await this.headObject(stagingKey);
      if (staged?.size !== size) {
        throw new Error(`S3 upload of ${digest}: the server stored ${staged?.size ?? 'no'} bytes, ${size} were sent`);
      }
      const created = await this.publish(stagingKey, digest, size);
      return { digest, size, created };
    } finally {
      body.destroy();
      // Gone in every outcome: copied to its name, rejected, or failed. Deleting a key that was
      // never created is a no-op on S3.
      await this.client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: stagingKey })).catch(() => undefined);
    }
  }

  /**
   * Copies a verified staging object to its blob key. If the blob exists already, it is copied
   * onto itself instead, which refreshes its LastModified (as the filesystem backend refreshes the
   * file's mtime) so that garbage collection sees it as just written and keeps it through its
   * grace period. If it vanishes in between (deleted), ours is copied after all. Concurrent writers
   * of the same digest may both copy: the bytes are identical and each copy replaces the object
   * atomically, so readers see one complete blob throughout; both may then report `created`.
   * Some S3-compatible servers fail one of two copies racing onto the same key (s3rver answers
   * 500 while it rewrites the file); the key names verified content, so when the blob is in place
   * at its full size afterwards, it is published, and this writer did not create it.
   */
  private async publish(stagingKey: string, digest: Digest, size: number): Promise<boolean> {
    try {
      return await this.copyIntoPlace(stagingKey, this.blobKey(digest), size);
    } catch (error) {
      const inPlace = await this.headObject(this.blobKey(digest)).catch(() => undefined);
      if (inPlace?.size === size) return false;
      throw error;
    }
  }

  private async copyIntoPlace(stagingKey: string, target: string, size: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.headObject(target);
      if (existing === undefined) break;
      try {
        await this.copyObject(target, target, existing.size);
        return false;
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    await this.copyObject(stagingKey, target, size);
    return true;
  }

  /**
   * A server-side copy, replacing the target atomically. CopyObject takes at most 5 GiB; larger
   * objects go through a multipart upload of UploadPartCopy ranges (which s3rver does not
   * implement; AWS, MinIO and Ceph do).
   */
  private async copyObject(sourceKey: string, targetKey: string, size: number): Promise<void> {
    const CopySource = `${this.bucket}/${sourceKey.split('/').map(encodeURIComponent).join('/')}`;
    if (size <= this.multipartCopyThreshold) {
      await this.client.send(
        new sdk.CopyObjectCommand({
          Bucket: this.bucket,
          Key: targetKey,
          CopySource,
          // REPLACE is what allows copying an object onto itself (the LastModified refresh).
          MetadataDirective: 'REPLACE',
          ContentType: BLOB_CONTENT_TYPE,
        }),
      );
      return;
    }
    const partSize = Math.max(this.copyPartSize, Math.ceil(size / MAX_PARTS));
    const ranges: Array<{ part: number; start: number; end: number }> = [];
    for (let start = 0, part = 1; start < size; start += partSize, part++) {
      ranges.push({ part, start, end: Math.min(start + partSize, size) - 1 });
    }
    const { UploadId } = await this.client.send(
      new sdk.CreateMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey, ContentType: BLOB_CONTENT_TYPE }),
    );
    if (UploadId === undefined) throw new Error(`S3 multipart copy to ${targetKey}: no UploadId in the answer`);
    try {
      const parts = await mapLimit(ranges, COPY_CONCURRENCY, async ({ part, start, end }): Promise<CompletedPart> => {
        const result = await this.client.send(
          new sdk.UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: targetKey,
            UploadId,
            PartNumber: part,
            CopySource,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        const etag = result.CopyPartResult?.ETag;
        if (etag === undefined) throw new Error(`S3 multipart copy to ${targetKey}: part ${part} has no ETag`);
        return { PartNumber: part, ETag: etag };
      });
      await this.client.send(
        new sdk.CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey, UploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (error) {
      await this.client
        .send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey, UploadId }))
        .catch(() => undefined);
      throw error;
    }
  }

  async statBlob(digest: Digest): Promise<BlobStat | undefined> {
    assertDigest(digest);
    const head = await this.headObject(this.blobKey(digest));
    return head === undefined ? undefined : { digest, size: head.size };
  }

  async readBlob(digest: Digest, range?: ByteRange): Promise<Readable | undefined> {
    assertDigest(digest);
    if (range !== undefined && !rangeShapeIsValid(range)) return this.refuseRange(digest, range);
    let response;
    try {
      response = await this.client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: this.blobKey(digest),
          ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      // A start at or beyond the end (or any range of an empty object): 416.
      if (range !== undefined && isInvalidRange(error)) return this.refuseRange(digest, range);
      throw error;
    }
    const body = response.Body;
    if (!(body instanceof Readable)) throw new Error(`S3 GetObject of ${digest}: expected a Node stream as body`);
    if (range === undefined) return body;
    // S3 cuts a range that runs past the end short (206 for what there is); the interface refuses
    // it. Some servers send more than asked (s3rver reads `bytes=0-0` as `bytes=0-`): cut it.
    const served = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.ContentRange?.trim() ?? '');
    const total = served ? Number(served[3]) : response.ContentRange === undefined ? response.ContentLength : undefined;
    if (total !== undefined && range.end >= total) {
      body.destroy();
      throw new RangeNotSatisfiableError(range, total);
    }
    if (!served || Number(served[1]) !== range.start || Number(served[2]) < range.end) {
      body.destroy();
      throw new Error(`S3 GetObject of ${digest} bytes=${range.start}-${range.end}: the server sent ${displayValue(String(response.ContentRange))}`);
    }
    return Number(served[2]) === range.end ? body : Readable.from(firstBytes(body, range.end - range.start + 1), { objectMode: false });
  }

  /** For a range that cannot be served: undefined if the blob is missing, else the error with its size. */
  private async refuseRange(digest: Digest, range: ByteRange): Promise<undefined> {
    const stat = await this.statBlob(digest);
    if (stat === undefined) return undefined;
    throw new RangeNotSatisfiableError(range, stat.size);
  }

  async deleteBlob(digest: Digest): Promise<boolean> {
    assertDigest(digest);
    return this.deleteObject(this.blobKey(digest));
  }

  async *listBlobs(): AsyncIterable<ListedBlob> {
    for await (const page of this.listPages(BLOB_PREFIX)) {
      for (const object of page.Contents ?? []) {
        const digest = digestOfBlobName(object.Key?.slice(BLOB_PREFIX.length) ?? '');
        if (digest === undefined) continue;
        yield { digest, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
    }
  }

  async blobUrl(digest: Digest, expiresInSeconds: number): Promise<string | undefined> {
    assertDigest(digest);
    if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_URL_SECONDS) {
      throw new RangeError(`blobUrl: expiresInSeconds must be a whole number from 1 to ${MAX_URL_SECONDS}`);
    }
    const key = this.blobKey(digest);
    if ((await this.headObject(key)) === undefined) return undefined;
    // Signing is local: no request. The URL carries the credentials' authority, so it expires
    // early if they do (temporary credentials of an instance role, for example).
    return sdk.getSignedUrl(this.client, new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: expiresInSeconds });
  }

  // ---- the temporary area ----

  /**
   * Staging objects under tmp/, then incomplete multipart uploads: lib-storage's to tmp/ (blobs of
   * more than one part) and multipart copies to blobs/sha256/ (blobs over 5 GiB), each with the
   * bytes of its parts and the time of its last part. A server that does not implement
   * ListMultipartUploads (s3rver) gets its staging objects listed only.
   */
  async *listTemporary(): AsyncIterable<TemporaryItem> {
    for await (const page of this.listPages(TEMP_PREFIX)) {
      for (const object of page.Contents ?? []) {
        const location = object.Key;
        if (location === undefined || !isTemporaryLocation(location)) continue;
        // Without a time the age is unknown: count it as just written, so it is never removed.
        yield { location, size: object.Size ?? 0, modified: object.LastModified ?? new Date() };
      }
    }
    for (const prefix of [TEMP_PREFIX, BLOB_PREFIX]) {
      for await (const upload of this.listUploads(prefix)) {
        const parts = await this.uploadParts(upload.location, upload.uploadId);
        if (parts === undefined) continue; // completed or aborted since it was listed
        const modified = parts.lastModified !== undefined && parts.lastModified > upload.initiated ? parts.lastModified : upload.initiated;
        yield { location: upload.location, uploadId: upload.uploadId, size: parts.size, modified };
      }
    }
  }

  /**
   * Deletes a staging object, or aborts an incomplete multipart upload (which discards its parts
   * and never touches an object of the same key), when it was last written before `modifiedBefore`.
   */
  async removeTemporary(item: TemporaryRef, modifiedBefore: Date): Promise<boolean> {
    const { location, uploadId } = item;
    if (uploadId === undefined) {
      assertTemporaryLocation(location);
      const head = await this.headObject(location);
      if (head?.modified === undefined || head.modified.getTime() >= modifiedBefore.getTime()) return false;
      await this.client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: location }));
      return true;
    }
    if (typeof location !== 'string' || !isUploadLocation(location) || typeof uploadId !== 'string' || uploadId.length === 0) {
      throw new Error(`not a multipart upload Nixyard makes: ${displayValue(String(location))}`);
    }
    const modified = await this.uploadModified(location, uploadId);
    if (modified === undefined || modified.getTime() >= modifiedBefore.getTime()) return false;
    try {
      await this.client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: location, UploadId: uploadId }));
    } catch (error) {
      if (isNoSuchUpload(error)) return false;
      throw error;
    }
    return true;
  }

  /** When an upload was last written to (its last part, else its start); undefined once it is gone. */
  private async uploadModified(location: string, uploadId: string): Promise<Date | undefined> {
    const parts = await this.uploadParts(location, uploadId);
    if (parts === undefined) return undefined;
    if (parts.lastModified !== undefined) return parts.lastModified;
    for await (const upload of this.listUploads(location)) {
      if (upload.location === location && upload.uploadId === uploadId) return upload.initiated;
    }
    return undefined;
  }

  /** Incomplete multipart uploads to keys under `prefix` that Nixyard could have started. */
  private async *listUploads(prefix: string): AsyncGenerator<{ location: string; uploadId: string; initiated: Date }> {
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      let page: ListMultipartUploadsCommandOutput;
      try {
        page = await this.client.send(
          new sdk.ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(KeyMarker !== undefined ? { KeyMarker } : {}),
            ...(UploadIdMarker !== undefined ? { UploadIdMarker } : {}),
            ...(this.listPageSize !== undefined ? { MaxUploads: this.listPageSize } : {}),
          }),
        );
      } catch (error) {
        if (isNotImplemented(error)) return;
        throw error;
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined || !isUploadLocation(upload.Key)) continue;
        yield { location: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated ?? new Date() };
      }
      if (!page.IsTruncated) return;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
      if (KeyMarker === undefined) throw new Error(`S3 listing of uploads under ${JSON.stringify(prefix)}: a truncated page without a marker`);
    }
  }

  /** The bytes of an upload's parts and the time of its last one; undefined once it is gone. */
  private async uploadParts(location: string, uploadId: string): Promise<{ size: number; lastModified: Date | undefined } | undefined> {
    let size = 0;
    let lastModified: Date | undefined;
    let PartNumberMarker: string | undefined;
    for (;;) {
      let page: ListPartsCommandOutput;
      try {
        page = await this.client.send(
          new sdk.ListPartsCommand({
            Bucket: this.bucket,
            Key: location,
            UploadId: uploadId,
            ...(PartNumberMarker !== undefined ? { PartNumberMarker } : {}),
            ...(this.listPageSize !== undefined ? { MaxParts: this.listPageSize } : {}),
          }),
        );
      } catch (error) {
        if (isNoSuchUpload(error)) return undefined;
        throw error;
      }
      for (const part of page.Parts ?? []) {
        size += part.Size ?? 0;
        if (part.LastModified !== undefined && (lastModified === undefined || part.LastModified > lastModified)) lastModified = part.LastModified;
      }
      if (!page.IsTruncated) return { size, lastModified };
      PartNumberMarker = page.NextPartNumberMarker;
      if (PartNumberMarker === undefined) throw new Error(`S3 listing of the parts of an upload to ${location}: a truncated page without a marker`);
    }
  }

  // ---- records ----

  async putRecord(key: RecordKey, value: unknown): Promise<void> {
    assertRecordKey(key);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('putRecord: value cannot be written as JSON');
    // A PUT replaces the object atomically: readers get the old or the new record.
    await this.client.send(
      new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.recordObjectKey(key), Body: json, ContentType: RECORD_CONTENT_TYPE }),
    );
  }

  async getRecord(key: RecordKey): Promise<unknown> {
    assertRecordKey(key);
    let response;
    try {
      response = await this.client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.recordObjectKey(key) }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const text = await response.Body?.transformToString('utf8');
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  async deleteRecord(key: RecordKey): Promise<boolean> {
    assertRecordKey(key);
    return this.deleteObject(this.recordObjectKey(key));
  }

  /**
   * Keys starting with `prefix` (a key, a key's beginning, or empty), as the filesystem backend
   * lists them. Listing from the top goes one level down with a delimiter first, so the blobs/ and
   * tmp/ prefixes, which may hold millions of objects, are never listed for records.
   */
  async *listRecords(prefix: string): AsyncIterable<RecordKey> {
    const { dirKey } = splitRecordPrefix(prefix);
    if (dirKey !== '') {
      yield* this.recordsUnder(prefix, prefix);
      return;
    }
    for await (const page of this.listPages(prefix, '/')) {
      for (const object of page.Contents ?? []) {
        const key = this.recordKeyOf(object.Key, prefix);
        if (key !== undefined) yield key;
      }
      for (const common of page.CommonPrefixes ?? []) {
        const top = common.Prefix;
        if (top === undefined || !mayHoldRecords(top.slice(0, -1), prefix)) continue;
        yield* this.recordsUnder(top, prefix);
      }
    }
  }

  private async *recordsUnder(listPrefix: string, prefix: string): AsyncGenerator<RecordKey> {
    for await (const page of this.listPages(listPrefix)) {
      for (const object of page.Contents ?? []) {
        const key = this.recordKeyOf(object.Key, prefix);
        if (key !== undefined) yield key;
      }
    }
  }

  /** The record key of an object key, when it is a valid one under `prefix`. */
  private recordKeyOf(objectKey: string | undefined, prefix: string): RecordKey | undefined {
    return objectKey === undefined ? undefined : recordKeyAt(objectKey, prefix);
  }

  // ---- S3 helpers ----

  private blobKey(digest: Digest): string {
    return blobLocation(digest);
  }

  private recordObjectKey(key: RecordKey): string {
    return recordLocation(key);
  }

  private async headObject(key: string): Promise<{ size: number; modified: Date | undefined } | undefined> {
    try {
      const head = await this.client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: head.ContentLength ?? 0, modified: head.LastModified };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** S3 answers a DELETE the same whether the key existed or not, so existence is asked first. */
  private async deleteObject(key: string): Promise<boolean> {
    if ((await this.headObject(key)) === undefined) return false;
    await this.client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    return true;
  }

  private async *listPages(prefix: string, delimiter?: string): AsyncGenerator<ListObjectsV2CommandOutput> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new sdk.ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(delimiter !== undefined ? { Delimiter: delimiter } : {}),
          ...(ContinuationToken !== undefined ? { ContinuationToken } : {}),
          ...(this.listPageSize !== undefined ? { MaxKeys: this.listPageSize } : {}),
        }),
      );
      yield page;
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && ContinuationToken === undefined) {
        throw new Error(`S3 listing of ${JSON.stringify(prefix)}: a truncated page without a continuation token`);
      }
    } while (ContinuationToken !== undefined);
  }
}
