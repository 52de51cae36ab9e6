// When a farm process is ready, asked from the root namespace over the bridge: Redis answers (the
// replica in sync with its primary), each Sentinel knows the other two and the replica (what a
// failover needs, as test/helpers/sentinel.ts waits for), APIs and workers answer /readyz, the
// proxy answers /v2/ from an API, and Prometheus is ready with every target scraped and up.

import { Redis } from 'ioredis';
import { SENTINEL_NAME } from './topology.js';
import type { FarmProcess } from './state.js';

/** Why the process is not ready yet, or undefined when it is. */
export type Probe = () => Promise<string | undefined>;

async function withRedis<T>(address: string, port: number, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({ host: address, port, lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return res.status;
}

const field = (info: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();

export function probeFor(proc: FarmProcess, expectedTargets: number): Probe {
  const { address, port } = proc;
  switch (proc.role) {
    case 'redis-primary':
      return () => withRedis(address, port, async (c) => ((await c.ping()) === 'PONG' ? undefined : 'no PONG'));
    case 'redis-replica':
      return () =>
        withRedis(address, port, async (c) => {
          const info = await c.info('replication');
          return field(info, 'master_link_status') === 'up' ? undefined : `replication link ${field(info, 'master_link_status') ?? 'absent'}`;
        });
    case 'sentinel':
      return () =>
        withRedis(address, port, async (c) => {
          const fields = (await c.call('SENTINEL', 'MASTER', SENTINEL_NAME)) as string[];
          const value = (name: string) => Number(fields[fields.indexOf(name) + 1]);
          const others = value('num-other-sentinels');
          const replicas = value('num-slaves');
          return others >= 2 && replicas >= 1 ? undefined : `knows ${others} other Sentinels and ${replicas} replicas`;
        });
    case 'api':
    case 'worker':
      return async () => {
        const status = await httpStatus(`http://${address}:${port}/readyz`);
        return status === 200 ? undefined : `/readyz answers ${status}`;
      };
    case 'proxy':
      // 200, or 401 where pulls need credentials: either way an API answered through nginx.
      return async () => {
        const status = await httpStatus(`http://${address}:${port}/v2/`);
        return status < 500 ? undefined : `/v2/ answers ${status}`;
      };
    case 'prometheus':
      return async () => {
        const status = await httpStatus(`http://${address}:${port}/-/ready`);
        if (status !== 200) return `/-/ready answers ${status}`;
        const res = await fetch(`http://${address}:${port}/api/v1/targets?state=active`, { signal: AbortSignal.timeout(2_000) });
        const body = (await res.json()) as { data: { activeTargets: Array<{ scrapeUrl: string; health: string }> } };
        const targets = body.data.activeTargets;
        const down = targets.filter((t) => t.health !== 'up').map((t) => `${t.scrapeUrl} ${t.health}`);
        if (targets.length < expectedTargets) return `${targets.length} of ${expectedTargets} targets known`;
        return down.length === 0 ? undefined : `targets not up: ${down.join(', ')}`;
      };
  }
}

/** Polls `probe` until it reports ready; throws with its last reason after `timeoutMs`, or when `alive` says the process is gone. */
export async function waitReady(what: string, probe: Probe, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let reason = 'not asked yet';
  for (;;) {
    if (!alive()) throw new Error(`${what} exited before it was ready`);
    try {
      const why = await probe();
      if (why === undefined) return;
      reason = why;
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${Math.round(timeoutMs / 1000)} s: ${reason}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
