// A Redis that fails over, for tests: a primary, a replica and three Sentinels (the smallest set
// that can agree on a failover), real redis-server processes on free loopback ports, each in a
// temp dir of its own. The Sentinels call the primary down after a second, so a test sees a
// failover within seconds rather than the default half-minute.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/stack.js';
import { tempDir } from './temp-dir.js';

export const PRIMARY_NAME = 'nixyard';

export interface RedisNode {
  port: number;
  child: ChildProcess;
}

export interface SentinelSet {
  primary: RedisNode;
  replica: RedisNode;
  sentinels: RedisNode[];
  /** REDIS_SENTINELS and REDIS_SENTINEL_NAME for the roles. */
  env: { REDIS_SENTINELS: string; REDIS_SENTINEL_NAME: string };
  /** The primary's port as the Sentinels name it now. */
  primaryPort(): Promise<number>;
  /** Resolves once the Sentinels name another primary than `port`, with the milliseconds it took. */
  failedOverFrom(port: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** Starts redis-server with `args`; resolves once it accepts connections (or Sentinel monitors). */
function startNode(args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (ready.test(seen)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server ${args.join(' ')} exited with ${code}: ${seen.slice(-500)}`)));
    child.once('error', reject);
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSentinelSet(): Promise<SentinelSet> {
  const dir = tempDir('sentinel');
  const children: ChildProcess[] = [];
  const clients: Redis[] = [];
  const node = async (name: string, args: (port: number) => string[], ready: RegExp): Promise<RedisNode> => {
    const port = await freePort();
    const child = await startNode(args(port), ready);
    children.push(child);
    return { port, child };
  };
  const stop = async () => {
    for (const client of clients.splice(0)) client.disconnect();
    await Promise.all(
      children.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    dir.cleanup();
  };
  try {
    const data = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir.path];
    const primary = await node('primary', (port) => data(port), /Ready to accept connections/);
    const replica = await node('replica', (port) => [...data(port), '--replicaof', '127.0.0.1', String(primary.port)], /Ready to accept connections/);
    // The tests kill this primary: its client only watches the replica sync, and goes quiet after.
    const primaryClient = new Redis({ port: primary.port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
    primaryClient.on('error', () => {});
    clients.push(primaryClient);
    await until('the replica to sync', 15_000, async () => ((await primaryClient.info('replication')).includes('connected_slaves:1') ? true : undefined));

    const sentinels: RedisNode[] = [];
    for (let i = 0; i < 3; i++) {
      sentinels.push(
        await node(
          `sentinel-${i}`,
          (port) => {
            const conf = join(dir.path, `sentinel-${i}.conf`);
            // Sentinel rewrites its file as it learns the topology, so each gets its own.
            writeFileSync(
              conf,
              [
                `port ${port}`,
                'bind 127.0.0.1',
                `dir ${dir.path}`,
                `sentinel monitor ${PRIMARY_NAME} 127.0.0.1 ${primary.port} 2`,
                `sentinel down-after-milliseconds ${PRIMARY_NAME} 1000`,
                `sentinel failover-timeout ${PRIMARY_NAME} 5000`,
                `sentinel parallel-syncs ${PRIMARY_NAME} 1`,
                '',
              ].join('\n'),
            );
            return [conf, '--sentinel'];
          },
          /\+monitor master/,
        ),
      );
    }
    const sentinelClients = sentinels.map((s) => {
      const client = new Redis({ port: s.port, host: '127.0.0.1' });
      client.on('error', () => {});
      clients.push(client);
      return client;
    });
    // A failover needs the Sentinels to know each other (they meet through the primary).
    await until('the Sentinels to find each other', 20_000, async () => {
      for (const client of sentinelClients) {
        const fields = (await client.call('SENTINEL', 'MASTER', PRIMARY_NAME)) as string[];
        const others = Number(fields[fields.indexOf('num-other-sentinels') + 1]);
        const replicas = Number(fields[fields.indexOf('num-slaves') + 1]);
        if (others < 2 || replicas < 1) return undefined;
      }
      return true;
    });
    const primaryPort = async () => {
      const [, port] = (await sentinelClients[0]!.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', PRIMARY_NAME)) as [string, string];
      return Number(port);
    };
    return {
      primary,
      replica,
      sentinels,
      env: { REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','), REDIS_SENTINEL_NAME: PRIMARY_NAME },
      primaryPort,
      async failedOverFrom(port, timeoutMs = 30_000) {
        const started = Date.now();
        await until('a failover', timeoutMs, async () => ((await primaryPort()) !== port ? true : undefined));
        return Date.now() - started;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
