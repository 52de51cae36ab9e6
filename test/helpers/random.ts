// Seeded random data for tests: the same seed gives the same cases and bytes on every run, so a
// failure found once can be run again.

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `items` in an order drawn from `random` (Fisher-Yates). */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `length` bytes that look random (they do not compress), the same for the same seed. */
export function seededBytes(length: number, seed: number): Buffer {
  const random = prng(seed);
  const bytes = Buffer.allocUnsafe(length);
  let i = 0;
  for (; i + 4 <= length; i += 4) bytes.writeUInt32LE(Math.floor(random() * 4294967296), i);
  for (; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}
