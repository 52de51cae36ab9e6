// The worker's hold on its Nix commands, with real processes: a command dies with a worker killed
// outright (setpriv's parent-death signal), the ledger records what runs and stops it on the way
// out, and a starting worker stops what a dead worker left running, but nothing else.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ChildLedger, reapLeftovers } from '../../src/nix/child-ledger.js';
import { parentDeathSignalTool, resolveExecutable, tiedSpawnLine } from '../../src/nix/tied-spawn.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

const dir = tempDir('child-ledger');
const started: ChildProcess[] = [];
after(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  dir.cleanup();
});

function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(state.slice(state.lastIndexOf(')') + 2).split(' ')[0]!);
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A `sleep 600` leading its own process group, as run-command starts Nix. */
function sleeper(): ChildProcess {
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  started.push(child);
  return child;
}

test('setpriv is here and can set a parent-death signal', () => {
  assert.match(parentDeathSignalTool() ?? '', /\/setpriv$/);
});

test('a command is spawned through setpriv as an argv array; a missing one is left to fail with ENOENT', () => {
  const sleep = resolveExecutable('sleep', process.env);
  assert.match(sleep ?? '', /^\/.*\/sleep$/);
  assert.deepEqual(tiedSpawnLine('sleep', ['1', '$(id)'], process.env), {
    command: parentDeathSignalTool(),
    args: ['--pdeathsig', 'KILL', '--', sleep, '1', '$(id)'],
  });
  assert.deepEqual(tiedSpawnLine('no-such-program-here', ['x'], process.env), { command: 'no-such-program-here', args: ['x'] });
  assert.equal(resolveExecutable('sleep', { PATH: 'relative/dir' }), undefined, 'only absolute PATH entries');
});

test('a command run by a worker that is killed outright dies with it', async () => {
  // A stand-in worker: runs a command through runCommand, prints the command's pid, and waits.
  const ledgerDir = join(dir.path, 'killed-worker');
  const script = `
    import { runCommand } from './apps/worker/src/nix/run-command.ts';
    import { ChildLedger } from './apps/worker/src/nix/child-ledger.ts';
    const ledger = new ChildLedger({ dir: ${JSON.stringify(ledgerDir)} });
    void runCommand('sleep', ['600'], { timeoutSeconds: 600, ledger });
    setTimeout(() => console.log(JSON.stringify(ledger.running())), 500);
  `;
  const worker = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(worker);
  const line = await new Promise<string>((resolve) => worker.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  const [recorded] = JSON.parse(line) as Array<{ pid: number; command: string }>;
  assert.equal(recorded?.command, 'sleep 600');
  assert.ok(alive(recorded.pid));
  const ledgerFile = readdirSync(ledgerDir);
  assert.equal(ledgerFile.length, 1, 'the ledger is on disk');

  worker.kill('SIGKILL');
  await until('the command to die with its worker', () => !alive(recorded.pid));
  // The dead worker's ledger stays for the next worker, which finds nothing left to stop.
  assert.deepEqual(reapLeftovers(ledgerDir), []);
  assert.deepEqual(readdirSync(ledgerDir), [], 'and removes the ledger');
});

test('the ledger records running commands, signals their groups, and is removed on close', async () => {
  const ledgerDir = join(dir.path, 'own');
  const ledger = new ChildLedger({ dir: ledgerDir });
  const a = sleeper();
  const b = sleeper();
  ledger.add(a.pid!, 'sleep 600');
  ledger.add(b.pid!, 'sleep 600');
  ledger.remove(b.pid!);
  const [file] = readdirSync(ledgerDir);
  assert.equal(file, `${process.pid}-${startTime(process.pid)}.json`);
  const written = JSON.parse(readFileSync(join(ledgerDir, file!), 'utf8')) as { children: Array<{ pid: number; startTime: string }> };
  assert.deepEqual(written.children.map((c) => [c.pid, c.startTime]), [[a.pid, startTime(a.pid!)]]);

  assert.equal(ledger.signalAll('SIGKILL'), 1);
  await until('the recorded command to die', () => !alive(a.pid!));
  assert.ok(alive(b.pid!), 'a command no longer recorded is left alone');
  ledger.close();
  assert.deepEqual(readdirSync(ledgerDir), []);
});

test("a starting worker stops what a dead worker left running, and nothing of anyone else's", async () => {
  const ledgerDir = join(dir.path, 'leftovers');
  mkdirSync(ledgerDir, { recursive: true });
  const orphan = sleeper();
  const ofLiveWorker = sleeper();
  const stranger = sleeper();
  // An owner that is gone: a pid no process has now.
  const deadOwner = { pid: 4_194_303, startTime: '1' };
  const ledgers = {
    dead: join(ledgerDir, `${deadOwner.pid}-1.json`),
    live: join(ledgerDir, `${process.pid}-${startTime(process.pid)}.json`),
    reused: join(ledgerDir, '4194302-1.json'),
  };
  writeFileSync(ledgers.dead, JSON.stringify({ owner: deadOwner, children: [{ pid: orphan.pid, startTime: startTime(orphan.pid!), command: 'nix-build' }] }));
  writeFileSync(ledgers.live, JSON.stringify({ owner: { pid: process.pid, startTime: startTime(process.pid) }, children: [{ pid: ofLiveWorker.pid, startTime: startTime(ofLiveWorker.pid!), command: 'nix-build' }] }));
  // A dead worker's child whose pid now belongs to another process (its start time differs).
  writeFileSync(ledgers.reused, JSON.stringify({ owner: { pid: 4_194_302, startTime: '1' }, children: [{ pid: stranger.pid, startTime: '2', command: 'nix-build' }] }));

  const stopped = reapLeftovers(ledgerDir, 100);
  assert.deepEqual(stopped.map((c) => c.pid), [orphan.pid]);
  await until('the orphan to stop', () => !alive(orphan.pid!));
  assert.ok(alive(ofLiveWorker.pid!), "a live worker's command runs on");
  assert.ok(alive(stranger.pid!), 'a process that reused a recorded pid is not touched');
  assert.ok(!existsSync(ledgers.dead) && !existsSync(ledgers.reused), "dead workers' ledgers are removed");
  assert.ok(existsSync(ledgers.live), "a live worker's ledger stays");
});
