// The farm's processes: each runs inside its host's namespace (`ip netns exec <ns> <argv...>`,
// which execs the command, so the pid is the command's), detached in a session of its own so it
// outlives `farm up`, with its output appended to a log file. Stopping signals the process group,
// and a namespace is emptied by its members (`ip netns pids`), so `down` also finds what a crashed
// `up` left behind: Nix commands a worker started in groups of their own included.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { namespacePids } from './netns.js';

export interface Launch {
  namespace: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Appended to: stdout and stderr both. */
  log: string;
}

/** Starts `argv` in the namespace, detached; returns its pid once it has been spawned. */
export async function launch(spec: Launch): Promise<number> {
  const out = openSync(spec.log, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', spec.namespace, ...spec.argv], {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', out, out],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    return child.pid!;
  } finally {
    closeSync(out);
  }
}

/** Whether `pid` runs, and is not a zombie waiting for its parent. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Whether `pid` is a member of the namespace (so a pid reused by a stranger is never signalled). */
export function inNamespace(pid: number, namespace: string): boolean {
  try {
    const theirs = statSync(`/proc/${pid}/ns/net`);
    const ours = statSync(`/run/netns/${namespace}`);
    return theirs.ino === ours.ino && theirs.dev === ours.dev;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pids: () => number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (pids().length === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/**
 * Signals the process group led by `pid` (one the farm launched) and waits for it to exit; after
 * `graceMs` the group gets SIGKILL. Only while `pid` is still in `namespace`.
 */
export async function stopGroup(pid: number, namespace: string, sig: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
  if (!isRunning(pid) || !inNamespace(pid, namespace)) return;
  signal(-pid, sig);
  const alive = () => (isRunning(pid) ? [pid] : []);
  if (await waitGone(alive, sig === 'SIGKILL' ? 5_000 : graceMs)) return;
  signal(-pid, 'SIGKILL');
  await waitGone(alive, 5_000);
}

/** Stops every process in the namespace: SIGTERM, then SIGKILL what is left after `graceMs`. */
export async function emptyNamespace(namespace: string, graceMs = 15_000): Promise<void> {
  const members = () => namespacePids(namespace).filter(isRunning);
  for (const pid of members()) signal(pid, 'SIGTERM');
  if (await waitGone(members, graceMs)) return;
  for (const pid of members()) signal(pid, 'SIGKILL');
  if (!(await waitGone(members, 5_000))) throw new Error(`processes ${members().join(', ')} in ${namespace} do not exit`);
}

/** The last lines of a log, for an error message. */
export function logTail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
