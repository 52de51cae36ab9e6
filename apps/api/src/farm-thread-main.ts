// The farm thread's program (farm-thread.ts says why the farm has a thread of its own): connects
// the farm (farm.ts) with the API's configuration, answers the serving thread's calls
// (farm-thread-protocol.ts) and, asked to close, closes the farm's connections and exits.
//
// It runs at a lower CPU priority than the serving thread (FARM_THREAD_NICE). Its work is for cold
// pulls, which wait seconds for their builds anyway; the serving thread answers a warm pull in
// well under a millisecond. Where both are ready to run on one core, the kernel then gives the
// serving thread most of it (nice +10 weighs about a tenth as much), so a storm's burst of
// admissions does not take equal turns with warm pulls.

import { openStorage } from '@nixyard/core';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { createApiLogger } from './api-logger.js';
import { connectFarm } from './farm.js';
import { encodeError, isFarmCall, type FarmThreadData, type FromFarmThread, type ToFarmThread } from './farm-thread-protocol.js';
import { SourceResolver } from './source-resolver.js';

const port = parentPort;
if (!port) throw new Error('farm-thread-main runs as the API\'s farm thread (farm-thread.ts), not on its own');
const { config, systems } = workerData as FarmThreadData;
const send = (message: FromFarmThread) => port.postMessage(message);

const logger = createApiLogger(config.logLevel, { thread: 'farm' });

/** How much lower (in nice steps) the farm thread runs than the serving thread. */
const FARM_THREAD_NICE = 10;
// Linux keeps a nice value per thread, and setpriority(2) for "this process" sets the calling
// thread's alone; elsewhere it would lower the whole API, serving thread included.
if (process.platform === 'linux') {
  try {
    setPriority(Math.min(19, getPriority() + FARM_THREAD_NICE));
  } catch (err) {
    logger.warn({ err }, 'could not lower the farm thread\'s CPU priority; it competes with warm pulls as an equal');
  }
}
const farm = connectFarm({
  config,
  systems,
  storage: openStorage(config.storage),
  // Its own resolver, for prebuild batches: the serving thread's caches stay on that thread.
  resolver: new SourceResolver(config.source, config.image.manifestTtlSeconds),
  logger,
  onRefused: (reason) => send({ type: 'refused', reason }),
});
logger.info({ systems }, 'build farm connection opened');

port.on('message', (message: ToFarmThread) => {
  if (message.type === 'close') {
    void farm.close().finally(() => {
      logger.flush();
      process.exit(0); // in a worker thread: ends this thread only
    });
    return;
  }
  void answer(message);
});
send({ type: 'ready' });

async function answer({ id, part, method, args }: Extract<ToFarmThread, { type: 'call' }>): Promise<void> {
  try {
    if (!isFarmCall(part, method)) throw new Error(`the farm has no call ${part}.${method}`);
    const target = farm[part] as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const value = await target[method]!(...args);
    send({ type: 'result', id, value });
  } catch (err) {
    send({ type: 'error', id, error: encodeError(err) });
  }
}
