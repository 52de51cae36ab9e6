// Which systems have a live worker right now (see @nixyard/core's worker-registry), so a pull
// for a system nobody builds fails at once with 503 instead of waiting out a build timeout.

import { WORKER_TTL_MS, workersKey, type System } from '@nixyard/core';
import type { Redis } from 'ioredis';

export class LiveWorkers {
  constructor(private readonly redis: Redis) {}

  async count(system: System): Promise<number> {
    return this.redis.zcount(workersKey(system), Date.now() - WORKER_TTL_MS, '+inf');
  }
}
