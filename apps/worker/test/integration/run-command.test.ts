import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCommand } from '../../src/nix/run-command.js';

test('captures stdout separately and both streams in the log tail', async () => {
  const outcome = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 4'], { timeoutSeconds: 10 });
  assert.equal(outcome.kind, 'exited');
  if (outcome.kind !== 'exited') return;
  assert.equal(outcome.code, 4);
  assert.equal(outcome.stdout, 'out\n');
  assert.match(outcome.logTail, /out\n/);
  assert.match(outcome.logTail, /err\n/);
});

test('arguments are data, not shell code', async () => {
  const hostile = '$(touch /tmp/nixyard-pwned); `id`; "quoted"';
  const outcome = await runCommand('printf', ['%s', hostile], { timeoutSeconds: 10 });
  assert.equal(outcome.kind === 'exited' && outcome.stdout, hostile);
});

test('drains a large stderr while stdout is read (no pipe stall)', async () => {
  // 4 MiB to stderr is far beyond a pipe buffer; a reader of stdout alone would hang here.
  const outcome = await runCommand('sh', ['-c', 'head -c 4194304 /dev/zero >&2; echo done'], { timeoutSeconds: 30, logTailBytes: 1024 });
  assert.equal(outcome.kind === 'exited' && outcome.stdout, 'done\n');
  assert.ok(outcome.logTail.length <= 1024);
});

test('a command past its deadline is killed with its whole process group', async () => {
  const outcome = await runCommand('sh', ['-c', 'echo started; sleep 30 & wait'], { timeoutSeconds: 1 });
  assert.equal(outcome.kind, 'timeout');
  assert.match(outcome.logTail, /started/);
  assert.ok(outcome.elapsedMs < 20_000);
});

test('a missing program rejects instead of hanging', async () => {
  await assert.rejects(runCommand('/nonexistent/nix-build', [], { timeoutSeconds: 5 }), /ENOENT/);
});
