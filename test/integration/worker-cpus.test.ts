// A worker that spares CPUs to serving (NIXYARD_WORKER_SPARE_CPUS), started as operators start it,
// against a private Redis: once it reports ready, every thread it has (the gzip pool's threads,
// started after the setting, among them) may run only on the CPUs it was allowed less the first
// ones, read back from the kernel (/proc/<pid>/task/*/status), and it says so in its log. Sparing
// every CPU it has leaves it building on all of them, with a warning; so does sparing none.
// Needs a machine (or cpuset) with at least 2 CPUs.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allowedCpus, parseCpuList } from '../../apps/worker/src/build-cpus.js';
import { freePort, startRole, waitForHttp, type Started } from '../../scripts/stack.js';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { startTestRedis, type TestRedis } from '../helpers/redis.js';
import { tempDir } from '../helpers/temp-dir.js';

const allowed = allowedCpus();
const skip = allowed.length < 2 ? `needs at least 2 CPUs, this process may use ${allowed.length}` : false;

/** Each thread of `pid` with the CPUs it may run on, as the kernel reports them. */
function threadCpus(pid: number): Array<{ tid: string; cpus: string }> {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    return { tid, cpus: /^Cpus_allowed_list:\s*(.+)$/m.exec(status)![1]! };
  });
}

const rangeOf = (cpus: readonly number[]) => cpus.join(',');
/** The kernel writes CPU lists with ranges (`1-3`); compare CPU sets, not spellings. */
const expand = (list: string) => rangeOf(parseCpuList(list));

describe('a worker sparing CPUs to serving', { skip, timeout: 90_000 }, () => {
  const dir = tempDir('worker-cpus');
  let redis: TestRedis;
  const workers: Started[] = [];

  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await redis?.stop();
    dir.cleanup();
  });

  async function startWorker(spare: string): Promise<{ pid: number; log: () => string }> {
    const port = await freePort();
    const worker = startRole('worker', {
      env: {
        ...process.env,
        REDIS_URL: redis.url,
        STORAGE_PATH: join(dir.path, 'storage'),
        NIXERY_PKGS_PATH: BUNDLED_SET,
        NIXYARD_WORKER_METRICS_PORT: String(port),
        NIXYARD_WORKER_SPARE_CPUS: spare,
        LOG_LEVEL: 'info',
      },
      stdio: 'pipe',
    });
    workers.push(worker);
    let log = '';
    for (const stream of [worker.child.stdout!, worker.child.stderr!]) stream.on('data', (chunk: Buffer) => (log += chunk.toString()));
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, 60_000, worker.child);
    return { pid: worker.child.pid!, log: () => log };
  }

  test('sparing one: every thread runs on the other CPUs', async () => {
    const { pid, log } = await startWorker('1');
    const threads = threadCpus(pid);
    assert.ok(threads.length > 4, `a worker has its gzip and V8 threads too: ${threads.length}`);
    for (const { tid, cpus } of threads) assert.equal(expand(cpus), rangeOf(allowed.slice(1)), `thread ${tid}`);
    assert.match(log(), /builds run on some CPUs, leaving the others to serving/);
    assert.match(log(), new RegExp(`"spared":\\[${allowed[0]}\\]`));
  });

  test('sparing as many as it has: it builds on all of them and warns', async () => {
    const { pid, log } = await startWorker(String(allowed.length));
    for (const { tid, cpus } of threadCpus(pid)) assert.equal(expand(cpus), rangeOf(allowed), `thread ${tid}`);
    assert.match(log(), /NIXYARD_WORKER_SPARE_CPUS leaves no CPU to build on/);
  });

  test('sparing none (the default): every CPU, nothing said', async () => {
    const { pid, log } = await startWorker('0');
    for (const { tid, cpus } of threadCpus(pid)) assert.equal(expand(cpus), rangeOf(allowed), `thread ${tid}`);
    assert.doesNotMatch(log(), /CPUs|SPARE_CPUS/);
  });
});
