// A farm thread that dies, for farm-thread.test.ts: it answers its first call with its thread id
// and exits on the second, as a thread would that hit a fault it could not survive.

import { parentPort, threadId } from 'node:worker_threads';
import type { FromFarmThread, ToFarmThread } from '../../src/farm-thread-protocol.js';

const port = parentPort!;
let calls = 0;
port.on('message', (message: ToFarmThread) => {
  if (message.type === 'close') process.exit(0);
  if (++calls > 1) process.exit(3);
  port.postMessage({ type: 'result', id: message.id, value: threadId } satisfies FromFarmThread);
});
port.postMessage({ type: 'ready' } satisfies FromFarmThread);
