// The threads that gzip layer blocks (docs/layering.md, "Compression"). One pool per worker process,
// started once and kept for the process's life: starting a thread costs tens of milliseconds, more
// than compressing a small layer. Each thread runs node:zlib's gzipSync on one block at a time
// (level 0, stored, when the block does not compress: see PROBE_MIN); a block's bytes travel to the
// thread and back without copying (its ArrayBuffer is transferred there with the task, and back
// with the result, and then reused for a later block).
//
// The pool also bounds memory for every layer packed at once: a block is allocated only against
// one of `maxBlocks` tokens, and its token comes back once its compressed member has been handed
// on (block-gzip.ts). So however many layers are packed concurrently, at most `maxBlocks` input
// blocks (and as many compressed members) exist at any moment.
//
// Threads are unref'd while idle, so an idle pool never keeps a process alive, and ref'd while they
// work, so a process waiting only for a block does not exit under it.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Bytes of tar in one gzip member. Part of the layer format: see block-gzip.ts before changing it. */
export const GZIP_BLOCK_SIZE = 1024 * 1024;

/**
 * Incompressible blocks (already compressed files, random data) are stored rather than deflated:
 * deflate spends as long failing to shrink them as it spends shrinking anything else, and then
 * stores them anyway. A block is judged by deflating PROBE_SAMPLES slices of PROBE_SAMPLE_SIZE
 * bytes spread evenly over it (the first at its start, the last at its end) at level 1, together:
 * when that saves less than 2% (PROBE_STORE_RATIO), the block's member is gzip level 0 (stored,
 * in the largest stored blocks deflate makes).
 * Blocks shorter than PROBE_MIN are never judged. Like the block size, this is part of the layer
 * format: it depends on the block's bytes alone.
 */
export const PROBE_MIN = 64 * 1024;
export const PROBE_SAMPLES = 4;
export const PROBE_SAMPLE_SIZE = 4096;
export const PROBE_STORE_RATIO = 0.98;

// The thread's whole program, as plain CommonJS so that it runs the same from TypeScript (tsx) and
// from compiled JavaScript, without a file to find and without loading tsx into every thread.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { deflateRawSync, gzipSync } = require('node:zlib');

function incompressible(bytes) {
  if (bytes.length < ${PROBE_MIN}) return false;
  const samples = new Uint8Array(${PROBE_SAMPLES * PROBE_SAMPLE_SIZE});
  for (let i = 0; i < ${PROBE_SAMPLES}; i++) {
    const at = Math.floor((i * (bytes.length - ${PROBE_SAMPLE_SIZE})) / ${PROBE_SAMPLES - 1});
    samples.set(bytes.subarray(at, at + ${PROBE_SAMPLE_SIZE}), i * ${PROBE_SAMPLE_SIZE});
  }
  return deflateRawSync(samples, { level: 1 }).length >= ${PROBE_STORE_RATIO} * samples.length;
}

parentPort.on('message', ({ id, input, length, level }) => {
  let output;
  try {
    const bytes = new Uint8Array(input, 0, length);
    // One output buffer big enough for the whole member (deflate's worst case adds ~5 bytes per
    // 16 KiB, gzip 18), instead of zlib's default 16 KiB pieces joined at the end: one allocation a
    // block. It is also what pins level 0's bytes: deflate cuts stored blocks to the room it has
    // for output, and with room for all of it they are always the largest (levels 1-9 do not
    // depend on the room).
    const member = gzipSync(bytes, { level: incompressible(bytes) ? 0 : level, chunkSize: length + (length >> 10) + 1024 });
    // Send the result's own memory when it has it to itself, else a copy of just its bytes.
    output = member.byteOffset === 0 && member.byteLength === member.buffer.byteLength
      ? member.buffer
      : member.buffer.slice(member.byteOffset, member.byteOffset + member.byteLength);
  } catch (error) {
    parentPort.postMessage({ id, input, error: String((error && error.message) || error) }, [input]);
    return;
  }
  parentPort.postMessage({ id, input, output }, [input, output]);
});
`;

interface Task {
  id: number;
  block: ArrayBuffer;
  length: number;
  level: number;
  resolve(member: Buffer): void;
  reject(error: Error): void;
}

interface Thread {
  worker: Worker;
  task: Task | undefined;
}

export interface GzipPoolOptions {
  /** Threads that compress (default: the cores available, availableParallelism()). */
  threads?: number;
  /** Blocks that may exist at once across every layer being packed (default: 2 × threads + 2). */
  maxBlocks?: number;
}

export class GzipPool {
  readonly threads: number;
  readonly maxBlocks: number;
  private readonly idle: Thread[] = [];
  private readonly all = new Set<Thread>();
  private readonly queue: Task[] = [];
  private readonly free: ArrayBuffer[] = [];
  private readonly waiting: Array<(block: ArrayBuffer) => void> = [];
  private tokens: number;
  private nextId = 0;
  private closed = false;

  constructor(options: GzipPoolOptions = {}) {
    this.threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(this.threads) || this.threads < 1) throw new RangeError(`GzipPool: threads must be a whole number ≥ 1, got ${this.threads}`);
    this.maxBlocks = options.maxBlocks ?? 2 * this.threads + 2;
    if (!Number.isInteger(this.maxBlocks) || this.maxBlocks < 1) throw new RangeError(`GzipPool: maxBlocks must be a whole number ≥ 1, got ${this.maxBlocks}`);
    this.tokens = this.maxBlocks;
  }

  /** Blocks that exist now (filling, in work, or compressed and not yet passed on). */
  get blocksInUse(): number {
    return this.maxBlocks - this.tokens;
  }

  /** Starts every thread now rather than on the first block (a worker does this at start-up). */
  start(): this {
    this.assertOpen();
    while (this.all.size < this.threads) this.idle.push(this.spawn());
    return this;
  }

  /** A token and an empty block of GZIP_BLOCK_SIZE bytes, immediately if one is free. */
  tryAcquire(): ArrayBuffer | undefined {
    this.assertOpen();
    if (this.tokens === 0) return undefined;
    this.tokens--;
    return this.free.pop() ?? new ArrayBuffer(GZIP_BLOCK_SIZE);
  }

  /** A token and an empty block, once one is free (first come, first served). */
  acquire(): Promise<ArrayBuffer> {
    const block = this.tryAcquire();
    if (block) return Promise.resolve(block);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives a token back, with its block when the caller still holds it (for reuse). */
  release(block?: ArrayBuffer): void {
    if (block && block.byteLength === GZIP_BLOCK_SIZE && this.free.length < this.maxBlocks) this.free.push(block);
    const next = this.waiting.shift();
    if (next) next(this.free.pop() ?? new ArrayBuffer(GZIP_BLOCK_SIZE));
    else this.tokens++;
  }

  /**
   * One gzip member of the first `length` bytes of `block`, at `level`. The block is transferred to
   * a thread (unusable here until it comes back); when the member is ready the block is kept for
   * reuse, but its token stays taken until release().
   */
  gzip(block: ArrayBuffer, length: number, level: number): Promise<Buffer> {
    this.assertOpen();
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, block, length, level, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops every thread; blocks still queued or in work fail. For tests and shutdown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error('the gzip pool was closed');
    for (const task of this.queue.splice(0)) task.reject(error);
    for (const thread of this.all) thread.task?.reject(error);
    await Promise.all([...this.all].map((thread) => thread.worker.terminate()));
    this.all.clear();
    this.idle.length = 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the gzip pool was closed');
  }

  private spawn(): Thread {
    const worker = new Worker(THREAD_SOURCE, { eval: true, execArgv: [], name: 'nixyard-gzip' });
    worker.unref();
    const thread: Thread = { worker, task: undefined };
    this.all.add(thread);
    worker.on('message', (message: { id: number; input: ArrayBuffer; output?: ArrayBuffer; error?: string }) => {
      const task = thread.task;
      if (!task || task.id !== message.id) return;
      thread.task = undefined;
      // The block is back: keep it for a later block of any layer.
      if (this.free.length < this.maxBlocks) this.free.push(message.input);
      if (message.output) task.resolve(Buffer.from(message.output));
      else task.reject(new Error(`gzip failed: ${message.error}`));
      this.idle.push(thread);
      this.dispatch();
    });
    // A thread that dies (out of memory, a crash) fails its block; a new one takes its place.
    const lost = (error: Error) => {
      if (!this.all.delete(thread)) return;
      const at = this.idle.indexOf(thread);
      if (at >= 0) this.idle.splice(at, 1);
      thread.task?.reject(error);
      thread.task = undefined;
      if (!this.closed) this.dispatch();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`a gzip thread exited with code ${code}`)));
    return thread;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let thread = this.idle.pop();
      if (!thread) {
        if (this.all.size >= this.threads) return;
        thread = this.spawn();
      }
      const task = this.queue.shift()!;
      thread.task = task;
      thread.worker.ref();
      thread.worker.postMessage({ id: task.id, input: task.block, length: task.length, level: task.level }, [task.block]);
    }
    for (const thread of this.idle) thread.worker.unref();
  }
}

let shared: GzipPool | undefined;

/** The process's pool, sized to its cores, for callers that are not given one (tests, benchmarks). */
export function sharedGzipPool(): GzipPool {
  shared ??= new GzipPool();
  return shared;
}
