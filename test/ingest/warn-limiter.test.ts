import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WarnLimiter } from '../../src/ingest/warn-limiter.js';

test('one warning per second per reason, with the count held back since the last', () => {
  let now = 0;
  const limiter = new WarnLimiter(1_000, () => now);
  assert.equal(limiter.admit('bad signature'), 0);
  assert.equal(limiter.admit('bad signature'), undefined);
  assert.equal(limiter.admit('bad signature'), undefined);
  assert.equal(limiter.admit('too old'), 0, 'another reason has its own budget');
  now = 999;
  assert.equal(limiter.admit('bad signature'), undefined);
  now = 1_000;
  assert.equal(limiter.admit('bad signature'), 3);
  assert.equal(limiter.admit('bad signature'), undefined);
});
