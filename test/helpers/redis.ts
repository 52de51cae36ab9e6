// A private redis-server for integration and end-to-end tests. It is started by the very code the
// quick start uses (scripts/stack.ts's startRedis: a free loopback port, nothing kept on disk),
// in a temp dir of its own that goes away with it.

import { Redis } from 'ioredis';
import { redisConnectionOptions } from '@nixyard/core';
import { startRedis, type RedisServer } from '../../scripts/stack.js';
import { tempDir } from './temp-dir.js';

export interface TestRedis extends RedisServer {
  /** A client of this server (of database `db`, default 0); disconnected by stop(). */
  client(db?: number): Redis;
  /** Disconnects the clients, stops the server and removes its directory. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a redis-server on a free port, or on `port` (to bring back one that was stopped). */
export async function startTestRedis(port?: number): Promise<TestRedis> {
  const dir = tempDir('redis');
  let server: RedisServer;
  try {
    server = await startRedis(dir.path, port);
  } catch (err) {
    dir.cleanup();
    throw err;
  }
  const clients: Redis[] = [];
  return {
    ...server,
    client(db = 0) {
      const redis = new Redis({ ...redisConnectionOptions(server.url), db });
      clients.push(redis);
      return redis;
    },
    async stop(graceMs) {
      for (const redis of clients.splice(0)) redis.disconnect();
      await server.stop(graceMs);
      dir.cleanup();
    },
  };
}
