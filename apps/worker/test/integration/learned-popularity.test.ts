import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { redisConnectionOptions } from '@nixyard/core';
import { LearnedPopularity, PublishedPopularity, loadPopularityMap } from '../src/popularity.js';
import { startRedis, type RedisServer } from '../../../scripts/stack.js';
import { tempDir } from '../../../test/helpers/bundled-set.js';

const dir = tempDir('popularity');
after(() => dir.cleanup());

describe('a published popularity map', () => {
  test('is read from a file:// URL and answers only the names it knows', async () => {
    const file = join(dir.path, 'popularity.json');
    writeFileSync(file, JSON.stringify({ 'glibc-2.36': 5000, 'jq-1.6': 12 }));
    const popularity = new PublishedPopularity(pathToFileURL(file).href);
    assert.deepEqual(await popularity.counts(['glibc-2.36', 'nosuch-1.0']), new Map([['glibc-2.36', 5000]]));
  });

  test('is fetched over http', async () => {
    const server = createServer((_req, res) => res.end(JSON.stringify({ 'bash-5.2': 300 })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      assert.deepEqual(await loadPopularityMap(`http://127.0.0.1:${port}/popularity.json`), new Map([['bash-5.2', 300]]));
    } finally {
      server.close();
    }
  });

  test('rejects a map that is not name → count', async () => {
    const file = join(dir.path, 'bad.json');
    writeFileSync(file, JSON.stringify({ glibc: 'lots' }));
    await assert.rejects(loadPopularityMap(pathToFileURL(file).href));
  });
});

describe('learned popularity in Redis', () => {
  let server: RedisServer;
  let redis: Redis;
  before(async () => {
    server = await startRedis(join(dir.path, 'redis'));
    redis = new Redis(redisConnectionOptions(server.url));
  });
  after(async () => {
    redis?.disconnect();
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
