// The farm's Redis side (farm.ts: the build queues, admission, live workers, prebuilds, the farm's
// status) runs on a thread of its own, not on the event loop that serves warm pulls. A storm of
// cold pulls is a burst of work for that side (BullMQ scripts, admission, refusals): on one event
// loop, 60 cold names at once kept it busy for about 200 ms on 2 cores, and warm pulls waited
// behind that (bench:storm). On its own thread, at a lower CPU priority (farm-thread-main.ts), the
// burst is the kernel's to schedule, and it favours the serving thread; loading BullMQ and
// ioredis, about half of what loading the API costs, no longer holds up the serving thread either.
// The price is a second V8 heap: about 20 MB more once the farm is in use.
//
// The thread starts with the first call that needs it (a cold pull, /readyz, /metrics, the status
// page, the admin API): a replica that only serves warm pulls never starts it. Each part's methods
// are called as before and answered by the thread (farm-thread-protocol.ts); errors keep their
// class. If the thread dies, the calls it had not answered fail with 503 UNAVAILABLE (the builds
// they waited for go on in the queue), and the next call starts a new thread.

import { RegistryError, type Config, type System } from '@nixyard/core';
import { once } from 'node:events';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { RefusalReason } from './admission.js';
import { FARM_CALLS, decodeError, type FarmPart, type FarmPartCalls, type FarmThreadData, type FromFarmThread } from './farm-thread-protocol.js';

/** What a pull whose call the dead thread had not answered is told to wait before trying again. */
const RETRY_AFTER_SECONDS = 5;

export interface FarmThreadOptions {
  config: Config;
  /** Every system the API serves. */
  systems: readonly System[];
  logger: Logger;
  /** Counts a cold pull refused by admission control (the API's metrics live on this thread). */
  onRefused(reason: RefusalReason): void;
  /** The thread's program (default farm-thread-main); tests hand in one that fails. */
  entry?: URL;
}

interface Call {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class FarmThread {
  private starting: Promise<Worker> | undefined;
  private readonly calls = new Map<number, Call>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: FarmThreadOptions) {}

  /** A stand-in for one part of the farm, whose methods the thread answers. */
  part<P extends FarmPart>(part: P): FarmPartCalls<P> {
    const standIn: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const method of FARM_CALLS[part]) standIn[method] = (...args) => this.call(part, method, args);
    return standIn as unknown as FarmPartCalls<P>;
  }

  /** Closes the farm's connections and ends the thread, when it was started. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = await this.starting?.catch(() => undefined);
    if (!worker) return;
    const exited = once(worker, 'exit');
    worker.postMessage({ type: 'close' });
    await exited;
  }

  private async call(part: FarmPart, method: string, args: unknown[]): Promise<unknown> {
    const starting = this.started();
    const worker = await starting;
    // The thread exited while this call waited for it to start: its calls have been failed.
    if (this.starting !== starting) throw unavailable('the connection to the build farm was lost');
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      worker.postMessage({ type: 'call', id, part, method, args });
    });
  }

  private started(): Promise<Worker> {
    if (this.closed) return Promise.reject(unavailable('the API is stopping'));
    this.starting ??= this.start();
    return this.starting;
  }

  private start(): Promise<Worker> {
    const data: FarmThreadData = { config: this.options.config, systems: this.options.systems };
    const worker = spawnThread(this.options.entry ?? new URL(`./farm-thread-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url), data);
    return new Promise((resolve, reject) => {
      worker.on('message', (message: FromFarmThread) => {
        switch (message.type) {
          case 'ready':
            resolve(worker);
            return;
          case 'refused':
            this.options.onRefused(message.reason);
            return;
          case 'result':
            this.calls.get(message.id)?.resolve(message.value);
            this.calls.delete(message.id);
            return;
          case 'error':
            this.calls.get(message.id)?.reject(decodeError(message.error));
            this.calls.delete(message.id);
            return;
        }
      });
      worker.on('error', (err) => this.options.logger.error({ err }, 'the farm thread failed'));
      worker.on('exit', (code) => {
        this.starting = undefined;
        reject(unavailable(`the build farm's thread exited (code ${code}) before it was ready`));
        if (!this.closed) this.options.logger.error({ code, unanswered: this.calls.size }, 'the farm thread exited; the next call starts a new one');
        for (const call of this.calls.values()) call.reject(unavailable('the connection to the build farm was lost'));
        this.calls.clear();
      });
    });
  }
}

function unavailable(message: string): RegistryError {
  return new RegistryError('UNAVAILABLE', `${message}; try again shortly`, null, { retryAfterSeconds: RETRY_AFTER_SECONDS });
}

/**
 * Starts `entry` as a worker thread. Compiled, it is a .js file that Node runs as it is; as
 * TypeScript sources (npm run dev, the tests) the thread first registers tsx's loader, since a
 * worker thread does not inherit `--import tsx` from the process (Node 20).
 */
function spawnThread(entry: URL, workerData: FarmThreadData): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const program = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(program, { eval: true, workerData });
}
