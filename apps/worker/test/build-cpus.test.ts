// Which CPUs a worker's builds run on when it spares some to serving (NIXYARD_WORKER_SPARE_CPUS):
// Linux's CPU-list format read, and the first `spare` allowed CPUs left out. The affinity itself
// is set on real processes in test/integration/worker-cpus.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCpuList, planBuildCpus } from '../src/build-cpus.js';

test('a CPU list reads as the CPUs it names, sorted and each once', () => {
  assert.deepEqual(parseCpuList('0'), [0]);
  assert.deepEqual(parseCpuList('0-3\n'), [0, 1, 2, 3]);
  assert.deepEqual(parseCpuList('8,0-2,10-11,1'), [0, 1, 2, 8, 10, 11]);
});

test('anything else is not a CPU list', () => {
  for (const text of ['', '0-', '-1', '3-1', '0,,1', 'a', '0 1', '1-2-3']) {
    assert.throws(() => parseCpuList(text), /not a CPU list/, text);
  }
});

test('builds leave the first spare CPUs they may use to serving', () => {
  assert.deepEqual(planBuildCpus([0, 1], 1), { kind: 'confined', cpus: [1], spared: [0] });
  // The allowed set need not start at 0 or be contiguous (a container's cpuset).
  assert.deepEqual(planBuildCpus([2, 3, 6, 7], 2), { kind: 'confined', cpus: [6, 7], spared: [2, 3] });
});

test('sparing none uses every CPU, and sparing all of them is refused', () => {
  assert.deepEqual(planBuildCpus([0, 1, 2, 3], 0), { kind: 'all' });
  assert.deepEqual(planBuildCpus([0], 1), { kind: 'too-few', allowed: [0] });
  assert.deepEqual(planBuildCpus([0, 1], 2), { kind: 'too-few', allowed: [0, 1] });
});
