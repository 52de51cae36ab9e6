// A clock the caches' tests move by hand instead of sleeping.

export interface FakeClock {
  now: () => number;
  advance(ms: number): void;
}

export function fakeClock(start = Date.parse('2026-12-01T00:00:00Z')): FakeClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
