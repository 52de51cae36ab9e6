// The API's log: one definition for both of its threads (the serving thread, main.ts, and the
// farm's, farm-thread.ts), so they log alike to the same file descriptor.
//
// Writes are asynchronous and buffered: lines gather until 4 KiB or for at most LOG_FLUSH_MS and
// go out in one write(2) on libuv's threads. A write per line woke one of those threads per
// request, which on a core shared with builds took turns with the event loop; pino flushes what
// is left when the process exits. A process killed outright loses at most the last LOG_FLUSH_MS
// of lines.

import { pino, type Logger } from 'pino';

const LOG_FLUSH_MS = 250;

/** `bindings` are added to every line (the thread's name, for the farm's). */
export function createApiLogger(level: string, bindings: Record<string, string> = {}): Logger {
  return pino({ level, base: { role: 'api', ...bindings } }, pino.destination({ sync: false, minLength: 4096, periodicFlush: LOG_FLUSH_MS }));
}
