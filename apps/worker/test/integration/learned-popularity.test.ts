// Learned popularity: counts shared by every worker through a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { LearnedPopularity } from '../../src/popularity.js';
import { startTestRedis, type TestRedis } from '../../../../test/helpers/redis.js';

describe('learned popularity in Redis', () => {
  let server: TestRedis;
  let redis: Redis;
  before(async () => {
    server = await startTestRedis();
    redis = server.client();
  });
  after(async () => {
    await server?.stop();
  });

  const glibc = '/nix/store/00000000000000000000000000000000-glibc-2.36';
  const oniguruma = '/nix/store/11111111111111111111111111111111-oniguruma-6.9';
  const jq = '/nix/store/22222222222222222222222222222222-jq-1.6';
  const hello = '/nix/store/33333333333333333333333333333333-hello-2.12';
  const info = (path: string, references: string[]) => ({ path, narSize: 1, references: [path, ...references].sort() });
  const jqGraph = { roots: [jq], paths: [info(glibc, []), info(oniguruma, [glibc]), info(jq, [glibc, oniguruma])] };
  const helloGraph = { roots: [hello], paths: [info(glibc, []), info(hello, [glibc])] };

  test('counts how many distinct paths refer to each name, across images and workers', async () => {
    const popularity = new LearnedPopularity(redis);
    await popularity.learn(jqGraph);
    await new LearnedPopularity(redis).learn(helloGraph); // another worker, another image
    await popularity.learn(jqGraph); // the same paths again teach nothing
    assert.deepEqual(
      await popularity.counts(['glibc-2.36', 'oniguruma-6.9', 'jq-1.6', 'never-seen']),
      new Map([['glibc-2.36', 3], ['oniguruma-6.9', 1]]),
      'glibc: referred to by oniguruma, jq and hello; self-references do not count',
    );
    assert.deepEqual(await popularity.counts([]), new Map());
  });

  test('two workers learning the same graph at once count it once', async () => {
    await redis.flushdb();
    await Promise.all([new LearnedPopularity(redis).learn(jqGraph), new LearnedPopularity(redis).learn(jqGraph)]);
    assert.deepEqual(await new LearnedPopularity(redis).counts(['glibc-2.36']), new Map([['glibc-2.36', 2]]));
  });
});
