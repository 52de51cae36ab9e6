// Connection options from the configured Redis (redis-url.ts): what every role's ioredis and
// BullMQ connections get, from a REDIS_URL or through Sentinel, and how they come back after an
// outage.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEAD_CONNECTION_MS, RECONNECT_MS, describeRedis, reconnectDelay, redisConnectionOptions } from '../src/index.js';

describe('redisConnectionOptions', () => {
  it('reads host, port, credentials, database and TLS from a URL', () => {
    const options = redisConnectionOptions('rediss://me:p%40ss@[::1]:6380/2');
    assert.deepEqual({ ...options, retryStrategy: undefined }, {
      host: '::1',
      port: 6380,
      username: 'me',
      password: 'p@ss',
      db: 2,
      tls: {},
      maxRetriesPerRequest: null,
      retryStrategy: undefined,
    });
    const plain = redisConnectionOptions('redis://127.0.0.1');
    assert.ok('port' in plain && plain.port === 6379);
    assert.throws(() => redisConnectionOptions('http://127.0.0.1:6379'), /not a redis URL/);
    assert.throws(() => redisConnectionOptions('redis://127.0.0.1:6379/x'), /bad database number/);
  });

  it('asks the Sentinels, takes a READONLY answer for a failover, and drops a connection that goes unanswered', () => {
    const options = redisConnectionOptions({
      kind: 'sentinel',
      sentinels: [{ host: '10.0.0.11', port: 26379 }],
      name: 'nixyard',
      username: undefined,
      password: 'secret',
      sentinelPassword: undefined,
      db: undefined,
    });
    assert.ok('sentinels' in options);
    assert.deepEqual(options.sentinels, [{ host: '10.0.0.11', port: 26379 }]);
    assert.equal(options.name, 'nixyard');
    assert.equal(options.password, 'secret');
    assert.equal(options.socketTimeout, DEAD_CONNECTION_MS);
    assert.equal(options.reconnectOnError(new Error("READONLY You can't write against a read only replica.")), true);
    assert.equal(options.reconnectOnError(new Error('ERR unknown command')), false);
    assert.equal(options.maxRetriesPerRequest, null);
  });

  it('tries again soon after a blip and twice a second during an outage, never giving up, in both forms', () => {
    const delays = [0, 1, 2, 5, 10, 11, 1000, 1e9].map(reconnectDelay);
    assert.deepEqual(delays, [50, 50, 100, 250, 500, 500, 500, 500]);
    assert.equal(RECONNECT_MS, 500);
    const sentinel = redisConnectionOptions({ kind: 'sentinel', sentinels: [{ host: 'a', port: 1 }], name: 'n', username: undefined, password: undefined, sentinelPassword: undefined, db: undefined });
    for (const options of [redisConnectionOptions('redis://127.0.0.1:6379'), sentinel]) assert.equal(options.retryStrategy, reconnectDelay);
  });
});

describe('describeRedis', () => {
  it('names the server without its password', () => {
    assert.equal(describeRedis({ kind: 'url', url: 'redis://user:hunter2@redis.internal:6380/1' }), 'redis://redis.internal:6380/1');
    const text = describeRedis({ kind: 'sentinel', sentinels: [{ host: '::1', port: 26379 }, { host: 's2', port: 26380 }], name: 'nixyard', username: undefined, password: 'hunter2', sentinelPassword: 'x', db: undefined });
    assert.equal(text, 'sentinel nixyard via [::1]:26379,s2:26380');
  });
});
