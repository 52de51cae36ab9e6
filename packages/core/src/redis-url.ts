// Where Redis is (REDIS_URL, or REDIS_SENTINELS) → connection options for ioredis and BullMQ.
// BullMQ wants an options object (it opens several connections, some of them blocking), not a
// URL, and ioredis keeps its URL parser private. With Sentinel, ioredis asks the Sentinels for the
// primary, and asks again whenever its connection breaks, the node it reached turns out to be a
// replica, or it hears nothing back for a while, so every client built from these options follows
// a failover without a restart.

import type { RedisConfig } from './config.js';

interface CommonOptions {
  username?: string;
  password?: string;
  db?: number;
  /** Required by BullMQ for its blocking connections. */
  maxRetriesPerRequest: null;
  /**
   * Milliseconds before reconnection attempt `times` (reconnectDelay). Without it BullMQ gives the
   * connections it opens itself (workers' job fetching, queue events) a backoff that grows to 20 s,
   * so after an outage of a few seconds a worker could sit idle, or an API's event stream stay
   * deaf, for as long again with Redis back (6 s after a 12 s outage, measured).
   */
  retryStrategy: (times: number) => number;
}

/** The longest pause between two attempts to reach Redis again. */
export const RECONNECT_MS = 500;

/**
 * 50 ms, 100 ms, ... up to RECONNECT_MS between attempts, never giving up: soon after a blip, twice
 * a second during an outage (a refused TCP connection per attempt).
 */
export function reconnectDelay(times: number): number {
  return Math.min(Math.max(1, times) * 50, RECONNECT_MS);
}

export type RedisConnectionOptions = CommonOptions &
  (
    | { host: string; port: number; tls?: Record<string, never> }
    | {
        sentinels: Array<{ host: string; port: number }>;
        /** The primary's name in the Sentinels' configuration. */
        name: string;
        sentinelPassword?: string;
        /** A primary demoted by a failover answers writes with READONLY: reconnect, and ask again. */
        reconnectOnError: (err: Error) => boolean;
        /**
         * A connection that gets no answer for this long is taken for dead and made again (which
         * asks the Sentinels anew): a primary whose host is cut off closes no connection, and TCP
         * would take minutes to notice. Longer than any blocking command BullMQ sends (10 s).
         * (ioredis' failoverDetector would notice sooner, but its Sentinel subscriptions outlive
         * a client closed with QUIT, as BullMQ closes them, and keep the process from exiting.)
         */
        socketTimeout: number;
      }
  );

/** How long a Sentinel-mode connection may go without an answer to a command it sent. */
export const DEAD_CONNECTION_MS = 15_000;

/** Options for `url` (a REDIS_URL as config.ts validated it), or for the configured Redis. */
export function redisConnectionOptions(redis: RedisConfig | string): RedisConnectionOptions {
  if (typeof redis === 'string') return urlOptions(redis);
  if (redis.kind === 'url') return urlOptions(redis.url);
  return {
    sentinels: redis.sentinels.map(({ host, port }) => ({ host, port })),
    name: redis.name,
    ...(redis.username !== undefined ? { username: redis.username } : {}),
    ...(redis.password !== undefined ? { password: redis.password } : {}),
    ...(redis.sentinelPassword !== undefined ? { sentinelPassword: redis.sentinelPassword } : {}),
    ...(redis.db !== undefined ? { db: redis.db } : {}),
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    socketTimeout: DEAD_CONNECTION_MS,
    maxRetriesPerRequest: null,
    retryStrategy: reconnectDelay,
  };
}

/** How the configured Redis is named in log lines and messages: never with a password. */
export function describeRedis(redis: RedisConfig): string {
  if (redis.kind === 'url') {
    const u = new URL(redis.url);
    return `${u.protocol}//${u.host}${u.pathname.length > 1 ? u.pathname : ''}`;
  }
  return `sentinel ${redis.name} via ${redis.sentinels.map(({ host, port }) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)).join(',')}`;
}

function urlOptions(url: string): RedisConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`not a redis URL: ${u.protocol}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !(Number.isInteger(db) && db >= 0)) throw new Error(`bad database number in redis URL: ${u.pathname}`);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    retryStrategy: reconnectDelay,
  };
}
