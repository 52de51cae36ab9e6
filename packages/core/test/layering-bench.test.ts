// The layering benchmark (bench/layering.ts) on a slice of its workload: the first 80 pulls over the
// committed Debian-derived dataset, so a change that makes stable layering lose its lead over
// Nixery's plan, break the budget or stop being deterministic fails here, in about a second, and
// not only when someone runs `npm run bench:layering`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { graphPopularity, loadStore } from '../../../bench/layering/dataset.js';
import { Images, simulate } from '../../../bench/layering/simulate.js';
import { lowerBoundStrategy, nixeryStrategy, seedStrategy, stableStrategy } from '../../../bench/layering/strategies.js';
import { DEFAULT_WORKLOAD, pullSequence } from '../../../bench/layering/workload.js';

describe('the layering benchmark on 80 pulls', () => {
  const store = loadStore();
  const popularity = graphPopularity(store);
  const pulls = pullSequence({ ...DEFAULT_WORKLOAD, pulls: 80 });
  const images = new Images(store);

  it('has stable layering close over half of the gap between Nixery and the lower bound', () => {
    const bound = simulate(images, pulls, lowerBoundStrategy, 'graph', popularity);
    const nixery = simulate(images, pulls, nixeryStrategy(), 'graph', popularity);
    const seed = simulate(images, pulls, seedStrategy, 'graph', popularity);
    for (const mode of ['graph', 'learned-after'] as const) {
      const stable = simulate(images, pulls, stableStrategy(), mode, popularity);
      const message = `${mode}: stable ${stable.downloaded}, Nixery ${nixery.downloaded}, bound ${bound.downloaded}`;
      assert.ok(stable.downloaded >= bound.downloaded, message);
      assert.ok(stable.downloaded - bound.downloaded <= (nixery.downloaded - bound.downloaded) / 2, message);
      assert.ok(stable.stored <= nixery.stored && stable.stored <= seed.stored, message);
      assert.ok(stable.layersMax <= 95, `${mode}: ${stable.layersMax} layers`);
    }
  });

  it('gives the same figures on every run', () => {
    const first = simulate(images, pulls, stableStrategy(), 'learned-after', popularity);
    assert.deepEqual(simulate(new Images(store), pulls, stableStrategy(), 'learned-after', popularity), first);
  });
});
