import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ioredis } from '../../src/core/commonjs-packages.js';
import { bullmqCommand } from '../../src/core/scripts/bullmq-script.js';
import { MOVE_TO_FINISHED } from '../../src/core/scripts/fetch-and-begin.js';
import { installLedgerOnFetch, LedgerOnFetch } from '../../src/workers/ledger-on-fetch.js';
import {
  type DeliveryRef,
  ledgerKeys,
  PredictionLedger,
} from '../../src/workers/prediction-ledger.js';
import { TestRedis } from '../support/redis-server.js';

/**
 * PredictionLedger.complete against a real redis-server: in a worker it waits for BullMQ's
 * completion of the delivery's job to carry it, and is sent on the ledger's own connection when
 * none comes in that turn or the one that did failed. The scripts themselves are tested in
 * test/core/scripts/ (ledger-scripts, fetch-and-begin), the ride on BullMQ's completion in
 * test/workers/ledger-on-fetch.test.ts.
 */

const PREFIX = 'ledger';
const OPTIONS = { prefix: PREFIX, lockTtlMs: 30_000, retentionSeconds: 3600 };
const delivery: DeliveryRef = {
  webhookId: 'msg_1',
  predictionId: 'p1',
  status: 'succeeded',
  terminal: true,
  jobId: 'msg_1',
};
const QUEUE_KEY = `${PREFIX}:deliveries:`;
const lockKey = ledgerKeys.lock(PREFIX, delivery.predictionId);
const predictionKey = ledgerKeys.prediction(PREFIX, delivery.predictionId);

let redis: TestRedis;
let ledgerConnection: Redis;

before(async () => {
  redis = await TestRedis.start();
  ledgerConnection = redis.client();
});
after(async () => {
  ledgerConnection.disconnect();
  await redis.destroy();
});
beforeEach(async () => {
  await ledgerConnection.flushall();
});

/** Takes the prediction's lock for `token`, as beginDelivery-3 does when a try runs. */
async function lockFor(token: string): Promise<void> {
  await ledgerConnection.set(lockKey, token, 'PX', 30_000);
}

/** BullMQ's arguments of a completion of `jobId` (only the job id and the queue are read). */
function completion(jobId: string): string[] {
  const { keys, argc, queueArg } = MOVE_TO_FINISHED;
  const args = Array.from({ length: keys + argc }, (_, i) => `arg${i}`);
  args[keys] = jobId;
  args[keys + queueArg - 1] = QUEUE_KEY;
  return args;
}

describe('PredictionLedger.complete', () => {
  it('without a completion of its job in that turn, is sent on the ledger’s own connection', async () => {
    const onFetch = new LedgerOnFetch(QUEUE_KEY, OPTIONS, []);
    const ledger = new PredictionLedger(ledgerConnection, OPTIONS, onFetch);
    await lockFor('try-1');
    assert.equal(await ledger.complete(delivery, 'try-1', 'a'), true);
    assert.equal(await ledgerConnection.hget(predictionKey, 'done:a'), 'msg_1 try-1');
    assert.equal(await ledgerConnection.exists(lockKey), 0, 'the lock given back');
  });

  it('answers false when another try had recorded the terminal processor’s success', async () => {
    const ledger = new PredictionLedger(ledgerConnection, OPTIONS);
    await ledgerConnection.hset(predictionKey, 'done:a', 'msg_0 try-0');
    await lockFor('try-1');
    assert.equal(await ledger.complete(delivery, 'try-1', 'a'), false);
    assert.equal(await ledgerConnection.exists(lockKey), 0, 'the lock is given back all the same');
  });

  it('when the completion that carried it is refused, is sent again on the ledger’s own', async () => {
    // A user that may not run scripts: every call on its connection is refused (NOPERM).
    await ledgerConnection.acl('SETUSER', 'noscripts', 'on', '>pw', '~*', '+@all', '-@scripting');
    const refusing = new ioredis.Redis(redis.url, { username: 'noscripts', password: 'pw' });
    try {
      await assert.rejects(refusing.eval('return 1', 0), /NOPERM/);
      const onFetch = new LedgerOnFetch(QUEUE_KEY, OPTIONS, []);
      installLedgerOnFetch(refusing, [onFetch]);
      const ledger = new PredictionLedger(ledgerConnection, OPTIONS, onFetch);
      await lockFor('try-1');
      const done = ledger.complete(delivery, 'try-1', 'a');
      // What BullMQ does next in the same turn: complete the job, here on a refusing connection.
      const bullmqCompletes = (
        refusing as unknown as Record<string, (a: string[]) => Promise<unknown>>
      )[bullmqCommand('moveToFinished')];
      await assert.rejects(bullmqCompletes?.(completion('msg_1')) ?? Promise.resolve(), /NOPERM/);
      assert.equal(await done, true);
      assert.equal(await ledgerConnection.hget(predictionKey, 'done:a'), 'msg_1 try-1');
      assert.equal(await ledgerConnection.exists(lockKey), 0);
    } finally {
      refusing.disconnect();
      await ledgerConnection.acl('DELUSER', 'noscripts');
    }
  });
});
