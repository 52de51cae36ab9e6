// The heartbeat against a stand-in for the ioredis client that records the commands it is given:
// a beat at start, another whenever the connection becomes ready again (a Redis that restarted
// empty has forgotten this worker), none after stop, and the goodbye on stop.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { workersKey } from '@nixyard/core';
import type { Redis } from 'ioredis';
import { startHeartbeat } from '../src/heartbeat.js';

class RecordingRedis extends EventEmitter {
  readonly commands: string[][] = [];
  pipeline() {
    const batch: string[][] = [];
    const pipeline = {
      zadd: (key: string, _score: number, member: string) => (batch.push(['zadd', key, member]), pipeline),
      zremrangebyscore: (key: string) => (batch.push(['zremrangebyscore', key]), pipeline),
      zrem: (key: string, member: string) => (batch.push(['zrem', key, member]), pipeline),
      exec: async () => {
        this.commands.push(...batch);
        return [];
      },
    };
    return pipeline;
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const KEY = workersKey('x86_64-linux');

test('beats at start, again on every reconnect, and says goodbye on stop', async () => {
  const redis = new RecordingRedis();
  const errors: unknown[] = [];
  const heartbeat = await startHeartbeat(redis as unknown as Redis, ['x86_64-linux'], 'w1', (err) => errors.push(err));
  assert.deepEqual(redis.commands, [['zadd', KEY, 'w1'], ['zremrangebyscore', KEY]]);

  redis.emit('ready');
  await settle();
  assert.deepEqual(redis.commands.filter((c) => c[0] === 'zadd').length, 2, 'announced again once Redis is back');

  await heartbeat.stop();
  assert.deepEqual(redis.commands.at(-1), ['zrem', KEY, 'w1']);
  redis.emit('ready');
  await settle();
  assert.deepEqual(redis.commands.filter((c) => c[0] === 'zadd').length, 2, 'no beat after stop');
  assert.equal(redis.listenerCount('ready'), 0);
  assert.deepEqual(errors, []);
});

test('a beat that fails on reconnect is reported, not thrown', async () => {
  const redis = new RecordingRedis();
  const errors: unknown[] = [];
  await startHeartbeat(redis as unknown as Redis, ['x86_64-linux', 'aarch64-linux'], 'w2', (err) => errors.push(err));
  assert.deepEqual(redis.commands.filter((c) => c[0] === 'zadd').map((c) => c[1]), [KEY, workersKey('aarch64-linux')]);
  redis.pipeline = () => ({ zadd: () => { throw new Error('connection lost'); } }) as never;
  redis.emit('ready');
  await settle();
  assert.equal(errors.length, 1);
});
