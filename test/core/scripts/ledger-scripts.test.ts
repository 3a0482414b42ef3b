import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { beginDelivery3 } from '../../../src/core/scripts/begin-delivery-3.js';
import { finishDelivery3 } from '../../../src/core/scripts/finish-delivery-3.js';
import { markProcessorDone2 } from '../../../src/core/scripts/mark-processor-done-2.js';
import { defineScripts } from '../../../src/core/scripts/redis-script.js';
import { releasePredictionLock1 } from '../../../src/core/scripts/release-prediction-lock-1.js';
import { renewPredictionLock2 } from '../../../src/core/scripts/renew-prediction-lock-2.js';
import { ledgerKeys } from '../../../src/workers/prediction-ledger.js';
import { TestRedis } from '../../support/redis-server.js';
import { waitFor } from '../../support/wait-for.js';

/**
 * Each ledger script, called directly against a real redis-server, over crafted states of one
 * prediction: fresh, terminal status recorded, processors done, locked by another try, lock
 * lapsed, and the same call twice (a resend after a reconnect must answer the same and change
 * nothing more). The dispatcher's use of them is in test/workers/.
 */

const PREFIX = 'scripts';
const PREDICTION = 'p1';
const WEBHOOK = 'msg_1';
const RETENTION = 3600;
const LOCK_MS = 30_000;
const K = {
  prediction: ledgerKeys.prediction(PREFIX, PREDICTION),
  lock: ledgerKeys.lock(PREFIX, PREDICTION),
  delivery: ledgerKeys.delivery(PREFIX, WEBHOOK),
};

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

let redis: TestRedis;
let client: Redis;

before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
  defineScripts(
    client,
    beginDelivery3,
    markProcessorDone2,
    finishDelivery3,
    renewPredictionLock2,
    releasePredictionLock1,
  );
});
after(async () => {
  client.disconnect();
  await redis.destroy();
});
beforeEach(async () => {
  await client.flushall();
});

function begin(status: string, token: string, processors: string[]) {
  return client.beginDelivery(
    K.prediction,
    K.lock,
    K.delivery,
    token,
    LOCK_MS,
    RETENTION,
    status,
    TERMINAL.has(status) ? '1' : '0',
    WEBHOOK,
    PREDICTION,
    ...processors,
  );
}

/** A crafted state: what is in Redis before the call. */
interface State {
  recorded?: string;
  predictionDone?: string[];
  deliveryDone?: string[];
  lockedBy?: string;
}

async function craft(state: State): Promise<void> {
  if (state.recorded) await client.hset(K.prediction, 'status', state.recorded);
  for (const name of state.predictionDone ?? [])
    await client.hset(K.prediction, `done:${name}`, 'msg_0 earlier-try');
  for (const name of state.deliveryDone ?? []) await client.hset(K.delivery, `done:${name}`, '1');
  if (state.lockedBy) await client.set(K.lock, state.lockedBy, 'PX', LOCK_MS);
}

describe('beginDelivery-3', () => {
  const cases: Array<{
    name: string;
    state: State;
    status: string;
    processors?: string[];
    answer: string[];
    lock: string | null;
    recorded: string | null;
    skipped?: string;
  }> = [
    {
      name: 'fresh, non-terminal: runs every wanted processor',
      state: {},
      status: 'processing',
      answer: ['run', '', 'a', 'b'],
      lock: 'mine',
      recorded: null,
    },
    {
      name: 'fresh, terminal: records the terminal status and runs',
      state: {},
      status: 'succeeded',
      answer: ['run', 'succeeded', 'a', 'b'],
      lock: 'mine',
      recorded: 'succeeded',
    },
    {
      name: 'non-terminal after the terminal state: skipped, counted, no lock',
      state: { recorded: 'succeeded' },
      status: 'processing',
      answer: ['skip', 'succeeded'],
      lock: null,
      recorded: 'succeeded',
      skipped: '1',
    },
    {
      name: 'a different terminal status after the recorded one: skipped',
      state: { recorded: 'succeeded' },
      status: 'failed',
      answer: ['skip', 'succeeded'],
      lock: null,
      recorded: 'succeeded',
      skipped: '1',
    },
    {
      name: 'terminal, every processor done for the prediction: done, no lock',
      state: { recorded: 'succeeded', predictionDone: ['a', 'b'] },
      status: 'succeeded',
      answer: ['done', 'succeeded'],
      lock: null,
      recorded: 'succeeded',
    },
    {
      name: 'terminal, one processor done: runs the other',
      state: { recorded: 'succeeded', predictionDone: ['a'] },
      status: 'succeeded',
      answer: ['run', 'succeeded', 'b'],
      lock: 'mine',
      recorded: 'succeeded',
    },
    {
      name: 'non-terminal: done on this delivery counts, done on the prediction does not',
      state: { predictionDone: ['b'], deliveryDone: ['a'] },
      status: 'processing',
      answer: ['run', '', 'b'],
      lock: 'mine',
      recorded: null,
    },
    {
      name: 'no processor wants the status: done',
      state: {},
      status: 'starting',
      processors: [],
      answer: ['done', ''],
      lock: null,
      recorded: null,
    },
    {
      name: 'locked by another try: busy, first wait',
      state: { lockedBy: 'other' },
      status: 'succeeded',
      answer: ['busy', '1'],
      lock: 'other',
      recorded: 'succeeded',
    },
    {
      name: 'locked by this very try (its own resend): runs',
      state: { lockedBy: 'mine' },
      status: 'processing',
      answer: ['run', '', 'a', 'b'],
      lock: 'mine',
      recorded: null,
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      await craft(c.state);
      const answer = await begin(c.status, 'mine', c.processors ?? ['a', 'b']);
      assert.deepEqual(answer, c.answer);
      assert.equal(await client.get(K.lock), c.lock);
      assert.equal(await client.hget(K.prediction, 'status'), c.recorded);
      assert.equal(await client.hget(K.prediction, 'skipped'), c.skipped ?? null);
      if (c.lock === 'mine') assert.ok((await client.pttl(K.lock)) > 0, 'the lock expires');
    });

    it(`${c.name}; resent: the same answer, nothing counted twice`, async () => {
      await craft(c.state);
      const processors = c.processors ?? ['a', 'b'];
      const first = await begin(c.status, 'mine', processors);
      const dump = await snapshot();
      const resent = await begin(c.status, 'mine', processors);
      assert.deepEqual(resent, first);
      assert.deepEqual(await snapshot(), dump);
    });
  }

  it('counts each try that finds the prediction busy, once', async () => {
    await craft({ lockedBy: 'other' });
    assert.deepEqual(await begin('processing', 'try-1', ['a']), ['busy', '1']);
    assert.deepEqual(await begin('processing', 'try-1', ['a']), ['busy', '1']);
    assert.deepEqual(await begin('processing', 'try-2', ['a']), ['busy', '2']);
  });

  it('a resend that finds the lock its own renews it for the whole lifetime', async () => {
    await client.set(K.lock, 'mine', 'PX', 1000);
    assert.deepEqual(await begin('succeeded', 'mine', ['a']), ['run', 'succeeded', 'a']);
    const ttl = await client.pttl(K.lock);
    assert.ok(ttl > 1000 && ttl <= LOCK_MS, `renewed to ${ttl} ms`);
  });

  it('runs once the other try’s lock lapsed', async () => {
    await client.set(K.lock, 'other', 'PX', 30);
    await waitFor('the lock to lapse', async () => (await client.exists(K.lock)) === 0);
    assert.deepEqual(await begin('succeeded', 'mine', ['a']), ['run', 'succeeded', 'a']);
    assert.equal(await client.get(K.lock), 'mine');
  });

  it('keeps the ledger for the retention after its last write', async () => {
    await craft({ lockedBy: 'other' });
    assert.deepEqual(await begin('succeeded', 'mine', ['a']), ['busy', '1']);
    const ttl = await client.ttl(K.prediction);
    assert.ok(ttl > RETENTION - 5 && ttl <= RETENTION, `ttl ${ttl}`);
    assert.ok((await client.ttl(K.delivery)) > 0, 'the progress of a try that waits expires');
  });

  it('a try that runs keeps no progress: its token is in the lock', async () => {
    await begin('succeeded', 'mine', ['a']);
    assert.equal(await client.exists(K.delivery), 0);
  });
});

describe('markProcessorDone-2', () => {
  const mark = (terminal: '0' | '1', token: string, webhookId = WEBHOOK) =>
    client.markProcessorDone(K.prediction, K.delivery, 'a', terminal, webhookId, RETENTION, token);

  const cases: Array<{
    name: string;
    state: State;
    terminal: '0' | '1';
    answer: number;
    record: string | null;
  }> = [
    {
      name: 'terminal, first success: recorded with its try',
      state: { recorded: 'succeeded' },
      terminal: '1',
      answer: 1,
      record: `${WEBHOOK} mine`,
    },
    {
      name: 'terminal, the record expired under a lapsed lock: no mark without the status',
      state: {},
      terminal: '1',
      answer: 1,
      record: null,
    },
    {
      name: 'terminal, another try recorded it: it ran twice',
      state: { recorded: 'succeeded', predictionDone: ['a'] },
      terminal: '1',
      answer: 0,
      record: 'msg_0 earlier-try',
    },
    {
      name: 'non-terminal: recorded on the delivery only',
      state: { predictionDone: ['a'] },
      terminal: '0',
      answer: 1,
      record: 'msg_0 earlier-try',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      await craft(c.state);
      assert.equal(await mark(c.terminal, 'mine'), c.answer);
      assert.equal(await client.hget(K.prediction, 'done:a'), c.record);
      assert.equal(await client.hget(K.delivery, 'done:a'), '1');
      assert.ok((await client.ttl(K.delivery)) > 0);
    });
  }

  it('resent after it recorded the success: still the first, not a second run', async () => {
    await craft({ recorded: 'succeeded' });
    assert.equal(await mark('1', 'mine'), 1);
    assert.equal(await mark('1', 'mine'), 1);
    assert.equal(await client.hget(K.prediction, 'done:a'), `${WEBHOOK} mine`);
  });

  it('a second try of the same delivery that ran it again is a second run', async () => {
    await craft({ recorded: 'succeeded' });
    assert.equal(await mark('1', 'try-1'), 1);
    assert.equal(await mark('1', 'try-2'), 0);
  });
});

describe('renewPredictionLock-2', () => {
  const cases: Array<{ name: string; lockedBy?: string; answer: number; lock: string | null }> = [
    {
      name: 'ours: extended, the record’s expiry with it',
      lockedBy: 'mine',
      answer: 1,
      lock: 'mine',
    },
    { name: 'another try’s: left alone', lockedBy: 'other', answer: 0, lock: 'other' },
    { name: 'lapsed: not taken back', answer: 0, lock: null },
  ];
  const renew = () => client.renewPredictionLock(K.lock, K.prediction, 'mine', LOCK_MS, RETENTION);
  for (const c of cases) {
    it(c.name, async () => {
      if (c.lockedBy) await client.set(K.lock, c.lockedBy, 'PX', 1000);
      await client.hset(K.prediction, 'status', 'succeeded');
      await client.expire(K.prediction, 100);
      assert.equal(await renew(), c.answer);
      assert.equal(await renew(), c.answer, 'resent');
      assert.equal(await client.get(K.lock), c.lock);
      const ttl = await client.pttl(K.lock);
      const recordTtl = await client.ttl(K.prediction);
      if (c.lockedBy === 'mine') {
        assert.ok(ttl > 1000, `renewed to ${ttl} ms`);
        assert.ok(recordTtl > RETENTION - 5, `record renewed to ${recordTtl} s`);
      } else {
        assert.ok(recordTtl <= 100, `record not renewed: ${recordTtl} s`);
      }
      if (c.lockedBy === 'other') assert.ok(ttl <= 1000, `not renewed: ${ttl} ms`);
    });
  }

  it('creates no record where there is none (a non-terminal delivery’s lock)', async () => {
    await client.set(K.lock, 'mine', 'PX', 1000);
    assert.equal(await renew(), 1);
    assert.equal(await client.exists(K.prediction), 0);
  });
});

describe('releasePredictionLock-1', () => {
  const cases: Array<{ name: string; lockedBy?: string; answers: number[]; lock: string | null }> =
    [
      {
        name: 'ours: released; a resend finds it gone',
        lockedBy: 'mine',
        answers: [1, 0],
        lock: null,
      },
      { name: 'another try’s: kept', lockedBy: 'other', answers: [0, 0], lock: 'other' },
      { name: 'lapsed: nothing to do', answers: [0, 0], lock: null },
    ];
  for (const c of cases) {
    it(c.name, async () => {
      if (c.lockedBy) await client.set(K.lock, c.lockedBy, 'PX', LOCK_MS);
      for (const answer of c.answers)
        assert.equal(await client.releasePredictionLock(K.lock, 'mine'), answer);
      assert.equal(await client.get(K.lock), c.lock);
    });
  }
});

describe('finishDelivery-3', () => {
  const finish = (token: string, processor = '', terminal: '0' | '1' = '1') =>
    client.finishDelivery(
      K.prediction,
      K.lock,
      K.delivery,
      token,
      processor,
      terminal,
      WEBHOOK,
      RETENTION,
    );

  const cases: Array<{
    name: string;
    state: State;
    token: string;
    processor?: string;
    terminal?: '0' | '1';
    answer: number;
    lock: string | null;
    record: string | null;
    /** The record's expiry renewed to the full retention. */
    renewed?: boolean;
  }> = [
    {
      name: 'holding the lock: releases it and forgets the delivery',
      state: { lockedBy: 'mine' },
      token: 'mine',
      answer: 1,
      lock: null,
      record: null,
    },
    {
      name: 'holding no lock: leaves another try’s lock',
      state: { lockedBy: 'other' },
      token: '',
      answer: 1,
      lock: 'other',
      record: null,
    },
    {
      name: 'lost the lock: leaves the new holder’s',
      state: { lockedBy: 'other' },
      token: 'mine',
      answer: 1,
      lock: 'other',
      record: null,
    },
    {
      name: 'terminal, with the last processor: its success recorded with the try, then released',
      state: { lockedBy: 'mine' },
      token: 'mine',
      processor: 'a',
      answer: 1,
      lock: null,
      record: `${WEBHOOK} mine`,
    },
    {
      name: 'terminal, the lock lapsed: the success recorded, the record’s retention renewed',
      state: {},
      token: 'mine',
      processor: 'a',
      answer: 1,
      lock: null,
      record: `${WEBHOOK} mine`,
      renewed: true,
    },
    {
      name: 'terminal, another try recorded the processor: it ran twice; still released',
      state: { lockedBy: 'mine', predictionDone: ['a'] },
      token: 'mine',
      processor: 'a',
      answer: 0,
      lock: null,
      record: 'msg_0 earlier-try',
    },
    {
      name: 'non-terminal, with the last processor: nothing kept per prediction',
      state: { lockedBy: 'mine' },
      token: 'mine',
      processor: 'a',
      terminal: '0',
      answer: 1,
      lock: null,
      record: null,
    },
  ];
  it('terminal, the lock lapsed and the record expired: no mark without the status', async () => {
    assert.equal(await finish('mine', 'a'), 1);
    assert.equal(await client.exists(K.prediction), 0, 'no record made of a mark alone');
    assert.equal(await client.exists(K.delivery), 0);
  });

  for (const c of cases) {
    it(c.name, async () => {
      await craft(c.state);
      // As the delivery's begin (or the lock's last renewal) left the record, a while ago.
      await client.hsetnx(K.prediction, 'status', 'succeeded');
      await client.expire(K.prediction, 100);
      await client.hset(K.delivery, 'predictionId', PREDICTION, 'done:b', '1', 'try', 'mine');
      assert.equal(await finish(c.token, c.processor, c.terminal), c.answer);
      const ttl = await client.ttl(K.prediction);
      if (c.renewed) assert.ok(ttl > RETENTION - 5 && ttl <= RETENTION, `renewed: ttl ${ttl}`);
      else assert.ok(ttl > 0 && ttl <= 100, `left as it was: ttl ${ttl}`);
      const state = await snapshot();
      // A resend no longer finds the lock its own, and may renew the record's expiry: no harm.
      assert.equal(await finish(c.token, c.processor, c.terminal), c.answer, 'resent');
      assert.deepEqual(await snapshot(), state, 'a resend changes nothing else');
      assert.equal(await client.get(K.lock), c.lock);
      assert.equal(await client.exists(K.delivery), 0);
      assert.equal(await client.hget(K.prediction, 'done:a'), c.record);
    });
  }

  it('records what markProcessorDone-2 would: a later mark of the same try is still the first', async () => {
    await craft({ recorded: 'succeeded', lockedBy: 'mine' });
    assert.equal(await finish('mine', 'a'), 1);
    assert.equal(
      await client.markProcessorDone(
        K.prediction,
        K.delivery,
        'a',
        '1',
        WEBHOOK,
        RETENTION,
        'mine',
      ),
      1,
    );
    assert.equal(
      await client.markProcessorDone(
        K.prediction,
        K.delivery,
        'a',
        '1',
        WEBHOOK,
        RETENTION,
        'other',
      ),
      0,
    );
  });
});

/** Every key with its type, value and whether it expires: what a resend must leave unchanged. */
async function snapshot(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await client.keys('*')).sort()) {
    const type = await client.type(key);
    const value = type === 'hash' ? await client.hgetall(key) : await client.get(key);
    out[key] = { type, value, expires: (await client.pttl(key)) > 0 };
  }
  return out;
}
