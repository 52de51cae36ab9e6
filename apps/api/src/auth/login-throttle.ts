// Repeated failed logins from one address are slowed down, so that guessing passwords against
// /auth/token or Basic credentials costs the guesser time, not the registry CPU: after a few
// failures within a quarter of an hour, every further credential check from that address waits
// first, twice as long per failure, up to a few seconds. A success does not reset the count (it
// could be a guess that hit); the count decays with time. Per API replica, in memory: a client
// spread over replicas gets at most that many times the rate, which is still slow.

import { LRUCache } from 'lru-cache';

const FREE_FAILURES = 3;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;
const WINDOW_MS = 15 * 60_000;

export class LoginThrottle {
  private readonly failures = new LRUCache<string, number>({ max: 50_000, ttl: WINDOW_MS });

  constructor(private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms))) {}

  /** How long a credential check from `client` waits now, in milliseconds. */
  delayFor(client: string): number {
    const failures = this.failures.get(client) ?? 0;
    if (failures < FREE_FAILURES) return 0;
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (failures - FREE_FAILURES));
  }

  /** Waits as long as `client`'s recent failures ask for. */
  async wait(client: string): Promise<void> {
    const delay = this.delayFor(client);
    if (delay > 0) await this.sleep(delay);
  }

  failed(client: string): void {
    this.failures.set(client, (this.failures.get(client) ?? 0) + 1);
  }
}
