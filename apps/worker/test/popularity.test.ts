// Published popularity maps (file:// and http://, the latter from an in-process server on
// loopback). Learned popularity needs Redis: integration/learned-popularity.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { PublishedPopularity, loadPopularityMap } from '../src/popularity.js';
import { tempDir } from '../../../test/helpers/temp-dir.js';

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
