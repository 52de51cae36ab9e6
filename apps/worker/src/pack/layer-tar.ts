// Deterministic tar streams (docs/design.md §1, phase 5). A layer's digest is its identity: the same store
// paths must give the same bytes on every replica and every run, or layers would never be shared
// between images and every pull after a rebuild would download everything again. So everything
// that varies between machines is pinned: entries come in sorted order, times are 1970-01-01T00:00:01Z,
// owners are root with no names, and only the permission bits of the mode are kept.
//
// Entries are described as data (TarEntry) so the store-path layers and the symlink layer share one
// writer; file contents are read from disk only while the tar is being consumed, chunk by chunk.

import { once } from 'node:events';
import type { Stats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import tar, { type Header, type Pack } from 'tar-stream';

type Sink = ReturnType<Pack['entry']>;

export type TarEntry =
  | { type: 'directory'; name: string; mode: number }
  | { type: 'symlink'; name: string; mode: number; target: string }
  /** `source` is the file on disk whose `size` bytes become the entry's content. */
  | { type: 'file'; name: string; mode: number; size: number; source: string };

/** 1970-01-01T00:00:01Z: not 0, which some tools treat as "no time" (Nix uses 1 in the store too). */
export const LAYER_MTIME = new Date(1000);

const STORE_DIR = '/nix/store';
// Big reads: fewer system calls and stream hops per byte (a 64 MiB file tars in ~half the CPU of 64 KiB reads).
const CHUNK_SIZE = 512 * 1024;

/**
 * The entries of a store-path layer: `nix/`, `nix/store/`, then each store path (sorted) with its
 * whole tree. Names are relative (no leading `/`), as OCI layers expect.
 */
export async function* storePathEntries(storePaths: Iterable<string>): AsyncGenerator<TarEntry> {
  const sorted = [...new Set(storePaths)].sort();
  for (const storePath of sorted) {
    if (path.dirname(storePath) !== STORE_DIR || path.basename(storePath).startsWith('.')) {
      throw new Error(`not a store path: ${JSON.stringify(storePath)}`);
    }
  }
  yield { type: 'directory', name: 'nix', mode: 0o755 };
  yield { type: 'directory', name: 'nix/store', mode: 0o755 };
  for (const storePath of sorted) yield* treeEntries(storePath, storePath.slice(1));
}

/**
 * The entries of the file tree at `diskPath` (a file, symlink or directory), named `name` in the
 * tar, depth-first with the names of each directory in code-unit order.
 */
export async function* treeEntries(diskPath: string, name: string): AsyncGenerator<TarEntry> {
  yield* entriesOf(diskPath, name, await lstat(diskPath));
}

async function* entriesOf(diskPath: string, name: string, stat: Stats): AsyncGenerator<TarEntry> {
  const mode = stat.mode & 0o7777;
  if (stat.isDirectory()) {
    yield { type: 'directory', name, mode };
    // Sorting here, not trusting readdir, is what makes the order independent of the filesystem.
    const children = (await readdir(diskPath)).sort();
    // All of a directory's lstat calls at once: the walk is bound by round trips, not by the disk.
    const stats = await Promise.all(children.map((child) => lstat(path.join(diskPath, child))));
    for (const [i, child] of children.entries()) {
      yield* entriesOf(path.join(diskPath, child), `${name}/${child}`, stats[i] as Stats);
    }
  } else if (stat.isSymbolicLink()) {
    yield { type: 'symlink', name, mode, target: await readlink(diskPath) };
  } else if (stat.isFile()) {
    // A hard link is just another regular file here: its bytes are stored again, which keeps each
    // layer self-contained (a tar hard link may only point at an entry in the same layer).
    yield { type: 'file', name, mode, size: stat.size, source: diskPath };
  } else {
    throw new Error(`cannot pack ${diskPath}: not a regular file, directory or symlink`);
  }
}

/** A tar being produced: its bytes, and a way to stop it. */
export interface TarStream extends AsyncIterable<Buffer> {
  /** Stops the walk and ends the stream (nothing happens when it has ended already). */
  destroy(): void;
}

/**
 * The tar bytes of `entries`, produced as they are read. Stopping the iteration early (or a failing
 * consumer) destroys the stream and stops the walk, as does destroy(); a failing walk makes the
 * iteration throw.
 */
export function tarStream(entries: AsyncIterable<TarEntry> | Iterable<TarEntry>): TarStream {
  const pack = tar.pack();
  // The walk may fail before anyone reads (storage opens its file first): the error is kept for the
  // iteration, and the stream's own 'error' event, which nobody may be listening to yet, is absorbed.
  let failure: { error: Error } | undefined;
  pack.on('error', () => {});
  writeEntries(pack, entries).then(
    () => pack.finalize(),
    (error: unknown) => {
      failure = { error: error instanceof Error ? error : new Error(String(error)) };
      pack.destroy(failure.error);
    },
  );
  const iterable = pack as unknown as AsyncIterable<Buffer>;
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* iterable;
      } catch (error) {
        throw failure?.error ?? error;
      }
      if (failure) throw failure.error;
    },
    destroy: () => pack.destroy(),
  };
}

async function writeEntries(pack: Pack, entries: AsyncIterable<TarEntry> | Iterable<TarEntry>): Promise<void> {
  for await (const entry of entries) {
    const header: Partial<Header> & { name: string } = {
      // tar-stream does not add the conventional trailing slash to directory names itself.
      name: entry.type === 'directory' ? `${entry.name}/` : entry.name,
      type: entry.type,
      mode: entry.mode,
      mtime: LAYER_MTIME,
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
      size: entry.type === 'file' ? entry.size : 0,
      ...(entry.type === 'symlink' ? { linkname: entry.target } : {}),
    };
    let sink!: Sink;
    // Settles when tar-stream is done with the entry, or rejects with why not (a destroyed pack).
    const done = new Promise<void>((resolve, reject) => {
      sink = pack.entry(header, (error) => (error ? reject(error) : resolve()));
    });
    // Failures reach us through `done` and the pack; without these no-op handlers an early exit
    // would leave an unhandled rejection, and the entry's 'error' event would crash the process.
    done.catch(() => {});
    sink.on('error', () => {});
    if (entry.type === 'file') await copyFile(entry.source, entry.size, sink, done);
    await done;
  }
}

/** Copies `size` bytes of a file into a tar entry, waiting whenever the pack is full (backpressure). */
async function copyFile(source: string, size: number, sink: Sink, done: Promise<void>): Promise<void> {
  const file = await open(source, 'r');
  try {
    for (let left = size; left > 0; ) {
      // A fresh buffer for every chunk: tar-stream queues the chunk itself, not a copy.
      const chunk = Buffer.allocUnsafe(Math.min(left, CHUNK_SIZE));
      const { bytesRead } = await file.read(chunk, 0, chunk.length);
      if (bytesRead === 0) throw new Error(`cannot pack ${source}: it shrank while being read`);
      left -= bytesRead;
      if (!sink.write(chunk.subarray(0, bytesRead))) await Promise.race([once(sink, 'drain'), done]);
    }
  } finally {
    await file.close();
  }
  sink.end(null);
}
