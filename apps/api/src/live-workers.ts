// Which systems have a live worker right now (see @nixyard/core's worker-registry), so a pull
// for a system nobody builds fails at once with 503 instead of waiting out a build timeout.

import { WORKER_TTL_MS, workersKey, type System } from '@nixyard/core';
import type { Redis } from 'ioredis';

const SETTLE_MS = 1000;
const RECHECK_MS = 200;

export class LiveWorkers {
  constructor(private readonly redis: Redis) {}

  async count(system: System): Promise<number> {
    return this.redis.zcount(workersKey(system), Date.now() - WORKER_TTL_MS, '+inf');
  }

  /**
   * Like count, but a zero is looked at again for up to `settleMs`: after Redis comes back empty,
   * live workers announce themselves again as soon as they reconnect (a moment later), and a pull
   * in that moment should wait for them rather than hear that no worker exists.
   */
  async countSettled(system: System, settleMs = SETTLE_MS): Promise<number> {
    const giveUpAt = Date.now() + settleMs;
    for (;;) {
      const live = await this.count(system);
      if (live > 0 || Date.now() >= giveUpAt) return live;
      await new Promise((resolve) => setTimeout(resolve, RECHECK_MS));
    }
  }
}
