// Runs one Nix command as a child process with a deadline.
//
// Arguments go to spawn() as an array, never through a shell. stdout and stderr are drained
// concurrently (a full stderr pipe would otherwise stall nix-build), stderr and stdout both feed a
// bounded log tail. On timeout the process group gets SIGINT first: Nix runs each builder in a
// session of its own, which only Nix itself can tear down, and it does so when interrupted. A
// group that ignores that for a few seconds is killed outright, and whatever of the group outlives
// its leader is killed once the leader has exited. The command dies with the worker even when the
// worker is killed outright (tied-spawn.ts), and is written down in the worker's child ledger
// while it runs (child-ledger.ts).

import { spawn } from 'node:child_process';
import type { ChildLedger } from './child-ledger.js';
import { LogTail } from './log-tail.js';
import { tiedSpawnLine } from './tied-spawn.js';

export interface RunOptions {
  /** Kill the command and report a timeout after this many seconds. */
  timeoutSeconds: number;
  env?: NodeJS.ProcessEnv;
  /** Upper bound on captured stdout; Nix's JSON answers are far smaller. */
  maxStdoutBytes?: number;
  logTailBytes?: number;
  /** Where the running command is recorded, so that the worker can stop it on the way out. */
  ledger?: ChildLedger;
}

export type RunOutcome =
  | { kind: 'exited'; code: number; stdout: string; logTail: string; elapsedMs: number }
  | { kind: 'timeout'; logTail: string; elapsedMs: number };

const DEFAULT_MAX_STDOUT = 64 * 1024 * 1024;
const KILL_GRACE_MS = 5000;

export class CommandOutputTooLargeError extends Error {}

export function runCommand(command: string, args: readonly string[], options: RunOptions): Promise<RunOutcome> {
  const started = performance.now();
  const maxStdout = options.maxStdoutBytes ?? DEFAULT_MAX_STDOUT;
  const tail = new LogTail(options.logTailBytes);
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;

  return new Promise((resolve, reject) => {
    const env = options.env ?? process.env;
    const line = tiedSpawnLine(command, args, env);
    const child = spawn(line.command, line.args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout can kill the builders too
    });
    const { ledger } = options;
    if (ledger && child.pid !== undefined) {
      const pid = child.pid;
      ledger.add(pid, [command, ...args].join(' '));
      child.once('exit', () => ledger.remove(pid));
    }
    let timedOut = false;
    let overflow = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const stop = () => {
      signalGroup('SIGINT');
      graceTimer ??= setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutSeconds * 1000);

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxStdout) {
        overflow = true;
        stop();
        return;
      }
      stdout.push(chunk);
      tail.append(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => tail.append(chunk));

    child.on('error', (err) => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      // The leader is gone; anything of its group still there was stopped for a reason.
      if (timedOut || overflow) signalGroup('SIGKILL');
      const elapsedMs = performance.now() - started;
      if (timedOut) return resolve({ kind: 'timeout', logTail: tail.toString(), elapsedMs });
      if (overflow) return reject(new CommandOutputTooLargeError(`${command} printed more than ${maxStdout} bytes`));
      resolve({
        kind: 'exited',
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(stdout).toString('utf8'),
        logTail: tail.toString(),
        elapsedMs,
      });
    });
  });
}
