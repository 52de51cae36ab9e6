// Nix commands that die with their worker. A worker killed outright (SIGKILL, the OOM killer)
// runs no cleanup code, and its nix-build would be re-parented to init and go on building for
// nobody, holding CPU, memory and Nix's locks. Linux can signal a process when its parent dies
// (PR_SET_PDEATHSIG); Node cannot set that itself, so the command is started through util-linux's
// `setpriv --pdeathsig KILL -- <command> <args...>`, which sets it and then execs the command in
// the same process (the signal setting survives exec). Nix sets the same signal on the builders it
// starts, so killing nix-build ends its build too.
//
// Where setpriv is missing (not Linux, no util-linux), commands run as they are; the worker warns
// at start-up, and the child ledger (child-ledger.ts) lets the next worker clean up instead.
// Arguments stay an argv array all the way: setpriv execs them, no shell sees them.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface SpawnLine {
  command: string;
  args: string[];
}

let setprivPath: string | null | undefined;

/** setpriv's absolute path when it can set a parent-death signal here, else null. Probed once. */
export function parentDeathSignalTool(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform !== 'linux') return setprivPath;
  const found = resolveExecutable('setpriv', process.env);
  if (found === undefined) return setprivPath;
  // setpriv sets the signal, then execs itself to print its version: both halves, no other program.
  const probe = spawnSync(found, ['--pdeathsig', 'KILL', '--', found, '--version'], { stdio: 'ignore', timeout: 10_000 });
  if (probe.status === 0) setprivPath = found;
  return setprivPath;
}

/**
 * How to spawn `command args` so that it is killed when this process dies: through setpriv when
 * available. The command is resolved against `env`'s PATH first, so a missing program fails the
 * spawn with ENOENT as it would without the wrapper (setpriv would exit 127 instead).
 */
export function tiedSpawnLine(command: string, args: readonly string[], env: NodeJS.ProcessEnv): SpawnLine {
  const setpriv = parentDeathSignalTool();
  const resolved = setpriv === null ? undefined : resolveExecutable(command, env);
  if (setpriv === null || resolved === undefined) return { command, args: [...args] };
  return { command: setpriv, args: ['--pdeathsig', 'KILL', '--', resolved, ...args] };
}

/** `command` as execvp would find it through `env.PATH`, or undefined when it is not there. */
export function resolveExecutable(command: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : (env.PATH ?? '').split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
