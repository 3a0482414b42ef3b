import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MinimalJob } from 'bullmq';
import { backoffDelay, backoffStrategy, MAX_BACKOFF_MS } from '../../src/workers/backoff.js';

describe('inlet backoff', () => {
  it('doubles per retry, between half and all of base · 2^(n-1)', () => {
    for (let retry = 1; retry <= 8; retry++) {
      const ceiling = 1000 * 2 ** (retry - 1);
      assert.equal(
        backoffDelay(retry, 1000, () => 0),
        ceiling / 2,
      );
      assert.equal(
        backoffDelay(retry, 1000, () => 1),
        ceiling,
      );
      const delay = backoffDelay(retry, 1000);
      assert.ok(delay >= ceiling / 2 && delay <= ceiling, `${delay} for retry ${retry}`);
    }
  });

  it('spreads retries that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, 1000)));
    assert.ok(delays.size > 10);
  });

  it('never waits longer than the cap, and waits nothing for a base of 0', () => {
    assert.equal(
      backoffDelay(100, 1000, () => 1),
      MAX_BACKOFF_MS,
    );
    assert.equal(backoffDelay(5, 0), 0);
  });

  it('is the Worker strategy for the `inlet` type, reading the base from the job', async () => {
    const job = { opts: { backoff: { type: 'inlet', delay: 200 } } } as unknown as MinimalJob;
    const delay = await backoffStrategy(2, 'inlet', new Error('x'), job);
    assert.ok(delay >= 200 && delay <= 400);
    assert.throws(() => backoffStrategy(1, 'linear', new Error('x'), job), /unknown backoff/);
  });
});
