import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogTail } from '../src/nix/log-tail.js';

test('keeps everything while under the limit', () => {
  const tail = new LogTail(100);
  tail.append('line 1\n');
  tail.append(Buffer.from('line 2\n'));
  assert.equal(tail.toString(), 'line 1\nline 2\n');
});

test('keeps only the newest bytes, starting at a whole line', () => {
  const tail = new LogTail(20);
  for (let i = 1; i <= 10; i++) tail.append(`line ${i}\n`);
  // 20 bytes hold "e 8\nline 9\nline 10\n"; the cut partial line is dropped.
  assert.equal(tail.toString(), 'line 9\nline 10\n');
});

test('a single chunk larger than the limit is cut to its end', () => {
  const tail = new LogTail(8);
  tail.append('0123456789abcdef');
  assert.equal(tail.toString(), '89abcdef');
});

test('rejects a limit that is not a positive integer', () => {
  assert.throws(() => new LogTail(0), RangeError);
  assert.throws(() => new LogTail(1.5), RangeError);
});
