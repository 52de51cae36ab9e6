// Which Nix commands this worker has running, written down so that someone can clean up after it.
// A worker that exits on its own kills them (`signalAll`); one killed outright cannot, and its
// children normally die with it (tied-spawn.ts). Where that mechanism is missing, the next worker
// started on the same host finds the dead worker's ledger and stops what it left running
// (`reapLeftovers`).
//
// A ledger is one small JSON file per worker process, in a directory under os.tmpdir() (TMPDIR)
// that only this user can write: the owner's pid and the command children's pids, each with its
// start time (field 22 of /proc/<pid>/stat). Pids are reused, so a process counts as the recorded
// one only while its start time matches, and a child is signalled only while it still leads its
// own process group (run-command.ts starts each command as a group leader): a stranger that got
// the pid, or a process of someone else, is never touched. Linux only (/proc); elsewhere the
// ledger keeps its list in memory and writes nothing.

import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const ProcessRef = z.object({ pid: z.number().int().positive(), startTime: z.string().regex(/^\d+$/) });
const LedgerFile = z.object({
  owner: ProcessRef,
  children: z.array(ProcessRef.extend({ command: z.string().max(1000) })),
});
type ProcessRef = z.infer<typeof ProcessRef>;
export interface LedgerChild extends ProcessRef {
  command: string;
}

/** How long a leftover gets to stop after SIGTERM (Nix then stops its builders) before SIGKILL. */
const TERM_GRACE_MS = 5_000;

/** Where ledgers live by default: per user, so that no one else can plant a file of pids. */
export function defaultLedgerDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `nixyard-worker-${uid}`);
}

interface ProcStat {
  state: string;
  pgrp: number;
  startTime: string;
}

/** The fields of /proc/<pid>/stat a ledger needs, or undefined when there is no such process. */
function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, , pgrp] = fields;
  const startTime = fields[19];
  if (state === undefined || pgrp === undefined || startTime === undefined) return undefined;
  return { state, pgrp: Number(pgrp), startTime };
}

/** Whether the recorded process still runs (not a different process with its pid, not a zombie). */
function isRunning(ref: ProcessRef): ProcStat | undefined {
  const stat = procStat(ref.pid);
  if (!stat || stat.startTime !== ref.startTime || stat.state === 'Z' || stat.state === 'X') return undefined;
  return stat;
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // gone, or not ours to signal
  }
}

export class ChildLedger {
  private readonly children = new Map<number, LedgerChild>();
  private readonly owner: ProcessRef | undefined;
  private readonly file: string | undefined;
  private written = false;

  constructor(
    private readonly options: { dir?: string; onError?: (err: unknown) => void } = {},
  ) {
    const self = procStat(process.pid);
    if (self) {
      this.owner = { pid: process.pid, startTime: self.startTime };
      this.file = join(options.dir ?? defaultLedgerDir(), `${process.pid}-${self.startTime}.json`);
    }
  }

  /** Records a command just spawned as the leader of its own process group. */
  add(pid: number, command: string): void {
    const stat = procStat(pid);
    this.children.set(pid, { pid, startTime: stat?.startTime ?? '0', command: command.slice(0, 1000) });
    this.write();
  }

  /** Forgets a command that has exited. */
  remove(pid: number): void {
    if (this.children.delete(pid)) this.write();
  }

  /** The commands running now. */
  running(): LedgerChild[] {
    return [...this.children.values()];
  }

  /** Signals the process group of every command still running; synchronous, for the way out. */
  signalAll(signal: NodeJS.Signals): number {
    let signalled = 0;
    for (const child of this.children.values()) if (signalGroup(child.pid, signal)) signalled++;
    return signalled;
  }

  /** Removes this worker's ledger file (it has nothing left running). */
  close(): void {
    if (!this.file || !this.written) return;
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
    this.written = false;
  }

  private write(): void {
    if (!this.file || !this.owner) return;
    const body: z.infer<typeof LedgerFile> = { owner: this.owner, children: this.running() };
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 });
      const temp = `${this.file}.tmp`;
      writeFileSync(temp, JSON.stringify(body), { mode: 0o600 });
      renameSync(temp, this.file);
      this.written = true;
    } catch (err) {
      this.options.onError?.(err);
    }
  }
}

/**
 * Stops what dead workers left running: for each ledger in `dir` whose owner no longer runs, the
 * process group of every recorded child that still runs gets SIGTERM, and SIGKILL after a grace
 * period if it is still there; then the ledger is deleted. Ledgers of live workers are left alone.
 * Returns the children it signalled; the SIGKILLs follow in the background (the timers do not keep
 * the process alive).
 */
export function reapLeftovers(dir: string = defaultLedgerDir(), termGraceMs = TERM_GRACE_MS): LedgerChild[] {
  if (procStat(process.pid) === undefined) return []; // no /proc: nothing can be judged safely
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const signalled: LedgerChild[] = [];
  for (const name of names) {
    if (!/^\d+-\d+\.json$/.test(name)) continue;
    const path = join(dir, name);
    let ledger: z.infer<typeof LedgerFile>;
    try {
      ledger = LedgerFile.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch {
      continue; // half-written by a live worker, or not ours: leave it
    }
    if (isRunning(ledger.owner)) continue;
    for (const child of ledger.children) {
      const stat = isRunning(child);
      if (!stat || stat.pgrp !== child.pid) continue;
      if (!signalGroup(child.pid, 'SIGTERM')) continue;
      signalled.push(child);
      setTimeout(() => {
        if (isRunning(child)?.pgrp === child.pid) signalGroup(child.pid, 'SIGKILL');
      }, termGraceMs).unref();
    }
    try {
      unlinkSync(path);
    } catch {
      // another starting worker got there first
    }
  }
  return signalled;
}
