// wrk, the C load generator (Debian's package), as the benches start it: with a script whose
// done() prints bench/wrk-report.lua's one-line summary, read back here. A C client spends a
// fraction of the CPU per request that Node's http client does, so on a machine shared with the
// server under test it takes less of the cores the server is measured on.

import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** What bench/wrk-report.lua prints: latencies in microseconds, of completed requests. */
export interface WrkReport {
  requests: number;
  bytes: number;
  durationUs: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  /** Answers other than 2xx and 3xx. */
  statusErrors: number;
  timeouts: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

/** The summary script; a script of its own loads it (`dofile`) to print the same line. */
export const WRK_REPORT_SCRIPT = join(import.meta.dirname, 'wrk-report.lua');

export interface WrkRun {
  /** The summary, once wrk has exited (after its duration, or after `interrupt()`). */
  report: Promise<WrkReport>;
  /** Stop now: wrk finishes its summary for the requests so far. */
  interrupt(): void;
  /** Stop without a summary (clean-up). */
  kill(): void;
}

/** Starts `wrk args...`; the args must name a script that prints the summary. */
export function startWrk(args: readonly string[]): WrkRun {
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const report = new Promise<WrkReport>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('WRK_REPORT '));
      if (code !== 0 || !line) return reject(new Error(`wrk ${args.join(' ')} failed (${code ?? signal}):\n${out}`));
      resolve(JSON.parse(line.slice('WRK_REPORT '.length)) as WrkReport);
    });
  });
  return {
    report,
    interrupt: () => void child.kill('SIGINT'),
    kill: () => void child.kill('SIGKILL'),
  };
}
