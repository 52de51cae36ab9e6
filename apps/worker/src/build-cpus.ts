// Builds leave CPUs to serving (NIXYARD_WORKER_SPARE_CPUS). Where a worker shares a host with an
// API (`npm start`, the compose file), a storm of builds must not slow warm pulls. A lower priority
// (NIXYARD_WORKER_NICE) is not enough for that: much of a build's CPU time is spent in the kernel
// (Nix forks, execs and maps a few processes per build, the worker writes layers), and a kernel
// built without full preemption, as servers' usually are, lets a waking API wait behind that work
// whatever its priority. On 2 cores, bench:storm's warm p99 during a storm was no lower with every
// thread of the worker at SCHED_IDLE than at nice 10; with the builds kept off one of the two
// CPUs it halved, 10.3 ms to 5.2 ms (docs/operations.md, "Builds yield to serving").
//
// So the worker confines itself, every thread, to the CPUs it may use less the first `spare` of
// them, at start-up: before its gzip threads and Nix processes exist, which inherit the setting
// (and the gzip pool, sized from the CPUs available, sizes itself to the rest). The CPUs it may
// use are its own affinity as it started (a cgroup's cpuset, a taskset it was started under), read
// from /proc/self/status. Node has no call for it, so util-linux's taskset sets it (util-linux is
// already needed for setpriv, tied-spawn.ts), with an argv array: no shell.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** What confining the builds came to, for the worker to log. */
export type BuildCpus =
  | { kind: 'all' }
  | { kind: 'confined'; cpus: number[]; spared: number[] }
  /** Sparing would leave the builds no CPU: they use every one. */
  | { kind: 'too-few'; allowed: number[] }
  /** Not on Linux, no taskset, or the affinity did not take. */
  | { kind: 'failed'; reason: string };

/** The CPU numbers of a Linux CPU list such as `0-3,8,10-11` (sorted, each once). */
export function parseCpuList(text: string): number[] {
  const cpus = new Set<number>();
  for (const part of text.trim().split(',')) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!range) throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    if (last < first) throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
    for (let cpu = first; cpu <= last; cpu++) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** The CPUs builds run on: all of `allowed` but the first `spare`; `all`/`too-few` when none are spared. */
export function planBuildCpus(allowed: readonly number[], spare: number): Exclude<BuildCpus, { kind: 'failed' }> {
  if (spare === 0) return { kind: 'all' };
  if (spare >= allowed.length) return { kind: 'too-few', allowed: [...allowed] };
  return { kind: 'confined', cpus: allowed.slice(spare), spared: allowed.slice(0, spare) };
}

/** The CPUs this process may run on (its main thread's affinity, which taskset sets for every thread). */
export function allowedCpus(): number[] {
  const status = readFileSync('/proc/self/status', 'utf8');
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  if (!line) throw new Error('/proc/self/status has no Cpus_allowed_list');
  return parseCpuList(line[1]!);
}

/** Keep this process's builds off the first `spare` CPUs it may use (see the top of this file). */
export function confineBuildCpus(spare: number): BuildCpus {
  if (spare === 0) return { kind: 'all' };
  if (process.platform !== 'linux') return { kind: 'failed', reason: `CPU affinity is set only on Linux, not ${process.platform}` };
  try {
    const plan = planBuildCpus(allowedCpus(), spare);
    if (plan.kind !== 'confined') return plan;
    // Every thread of this process; children and threads started later inherit it.
    execFileSync('taskset', ['--all-tasks', '--pid', '--cpu-list', plan.cpus.join(','), String(process.pid)], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    const now = allowedCpus();
    if (now.join(',') !== plan.cpus.join(',')) return { kind: 'failed', reason: `the CPUs allowed are ${now.join(',')} after setting ${plan.cpus.join(',')}` };
    return plan;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return { kind: 'failed', reason: stderr || (err as Error).message };
  }
}
