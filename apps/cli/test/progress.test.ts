import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { PrebuildImage } from '@nixyard/core';
import { createProgress, formatRate, formatSeconds, progressStats } from '../src/progress.js';
import { batchOf } from './fixtures.js';

const image = (state: PrebuildImage['state']): PrebuildImage => ({ image: 'hello', system: 'x86_64-linux', imageKey: 'a'.repeat(64), state });

test('rate counts only what finished while watching; ETA from the remaining images', () => {
  const batch = batchOf([image('cached'), image('cached'), image('built'), image('built'), image('queued'), image('queued')]);
  const stats = progressStats(batch, 2, 4000);
  assert.deepEqual(stats, { done: 4, total: 6, rate: 0.5, etaSeconds: 4 });
  assert.equal(progressStats(batch, 4, 4000).etaSeconds, undefined, 'no progress yet: no ETA');
  assert.equal(progressStats(batchOf([image('built')]), 0, 0).etaSeconds, 0);
});

test('durations and rates read naturally', () => {
  assert.equal(formatSeconds(undefined), '?');
  assert.equal(formatSeconds(42.4), '42s');
  assert.equal(formatSeconds(185), '3m05s');
  assert.equal(formatSeconds(3720), '1h02m');
  assert.equal(formatRate(2.25), '2.3/s');
  assert.equal(formatRate(0.2), '12.0/min');
});

function capture(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean; columns?: number }; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY, columns: 160 });
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

test('without a terminal: one line per change of the counts, no escape codes', () => {
  let now = 0;
  const out = capture(false);
  const first = batchOf([image('queued'), image('queued')]);
  const progress = createProgress(out.stream, first, { now: () => now });
  now = 1000;
  progress.update(first); // unchanged: no line
  now = 2000;
  progress.update(batchOf([image('built'), image('building')]));
  now = 3000;
  progress.finish(batchOf([image('built'), image('failed')]));
  const lines = out.text().trimEnd().split('\n');
  assert.deepEqual(lines, [
    '[    0s] 0/2 done: 0 built, 0 cached, 0 failed; 0 building, 2 queued; 0.0/min, ETA ?',
    '[    2s] 1/2 done: 1 built, 0 cached, 0 failed; 1 building, 0 queued; 30.0/min, ETA 2s',
    '[    3s] 2/2 done: 1 built, 0 cached, 1 failed; 40.0/min, ETA 0s',
  ]);
  assert.doesNotMatch(out.text(), /\x1b/);
});

test('on a terminal: a bar that ends drawn at 100%', () => {
  const out = capture(true);
  const progress = createProgress(out.stream, batchOf([image('queued'), image('queued')]));
  progress.update(batchOf([image('built'), image('queued')]));
  progress.finish(batchOf([image('built'), image('cached')]));
  const frames = out.text().split(/\r|\x1b\[[?0-9;]*[A-Za-z]|\x1b[78]/).filter((f) => f.trim() !== '');
  assert.match(frames[0]!, / 0% \| 0\/2 done/);
  assert.match(frames.at(-1)!, / 100% \| 2\/2 done \| 1 built, 1 cached, 0 failed \| [0-9.]+\/(s|min) \| ETA 0s$/);
  assert.match(frames[0]!, /\| ETA \?$/, 'no ETA before anything finished');
});
