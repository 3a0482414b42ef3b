import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ioredis } from '../../src/core/commonjs-packages.js';
import {
  type DeliveryRef,
  ledgerKeys,
  PredictionLedger,
} from '../../src/workers/prediction-ledger.js';
import { countSocketWrites, socketReads, TestRedis } from '../support/redis-server.js';

/**
 * PredictionLedger.complete against a real redis-server: it goes out on the connection BullMQ
 * completes jobs on, ahead of that connection's next command and in the same write, and a call
 * refused there is sent again on the ledger's own connection. The scripts themselves are tested
 * in test/core/scripts/ledger-scripts.test.ts.
 */

const PREFIX = 'ledger';
const OPTIONS = { prefix: PREFIX, lockTtlMs: 30_000, retentionSeconds: 3600 };
const delivery: DeliveryRef = {
  webhookId: 'msg_1',
  predictionId: 'p1',
  status: 'succeeded',
  terminal: true,
};
const lockKey = ledgerKeys.lock(PREFIX, delivery.predictionId);
const predictionKey = ledgerKeys.prediction(PREFIX, delivery.predictionId);

let redis: TestRedis;
let ledgerConnection: Redis;
let bullConnection: Redis;

before(async () => {
  redis = await TestRedis.start();
  ledgerConnection = redis.client();
  bullConnection = redis.client();
});
after(async () => {
  ledgerConnection.disconnect();
  bullConnection.disconnect();
  await redis.destroy();
});
beforeEach(async () => {
  await ledgerConnection.flushall();
});

/** Takes the prediction's lock for `token`, as beginDelivery-3 does when a try runs. */
async function lockFor(token: string): Promise<void> {
  await ledgerConnection.set(lockKey, token, 'PX', 30_000);
}

describe('PredictionLedger.complete', () => {
  it('runs before the next command on BullMQ’s connection, and leaves in the same write', async () => {
    const ledger = new PredictionLedger(ledgerConnection, OPTIONS, bullConnection);
    await bullConnection.ping(); // the script is defined and the connection ready
    await lockFor('try-1');
    const readsBefore = await socketReads(ledgerConnection);
    const writes = countSocketWrites(bullConnection);
    // What BullMQ does after the dispatcher returns: its next command on the same connection.
    const done = ledger.complete(delivery, 'try-1', 'a');
    const next = bullConnection.multi().exists(lockKey).hget(predictionKey, 'done:a').exec();
    const [first, seen] = await Promise.all([done, next]);
    writes.stop();
    const readsAfter = await socketReads(ledgerConnection);

    assert.equal(first, true);
    assert.deepEqual(seen, [
      [null, 0],
      [null, 'msg_1 try-1'],
    ]);
    // One write for both (the ledger's script and the MULTI), so one read of Redis's, and one
    // read for the second INFO.
    assert.equal(writes.count(), 1);
    assert.equal(readsAfter - readsBefore, 2);
  });

  it('answers false when another try had recorded the terminal processor’s success', async () => {
    const ledger = new PredictionLedger(ledgerConnection, OPTIONS, bullConnection);
    await ledgerConnection.hset(predictionKey, 'done:a', 'msg_0 try-0');
    await lockFor('try-1');
    assert.equal(await ledger.complete(delivery, 'try-1', 'a'), false);
    assert.equal(await ledgerConnection.exists(lockKey), 0, 'the lock is given back all the same');
  });

  it('a call refused on BullMQ’s connection is sent again on the ledger’s own', async () => {
    // A user that may not run scripts: every call on its connection is refused (NOPERM).
    await ledgerConnection.acl('SETUSER', 'noscripts', 'on', '>pw', '~*', '+@all', '-@scripting');
    const refusing = new ioredis.Redis(redis.url, { username: 'noscripts', password: 'pw' });
    try {
      await assert.rejects(refusing.eval('return 1', 0), /NOPERM/);
      const ledger = new PredictionLedger(ledgerConnection, OPTIONS, refusing);
      await lockFor('try-1');
      assert.equal(await ledger.complete(delivery, 'try-1', 'a'), true);
      assert.equal(await ledgerConnection.hget(predictionKey, 'done:a'), 'msg_1 try-1');
      assert.equal(await ledgerConnection.exists(lockKey), 0);
    } finally {
      refusing.disconnect();
      await ledgerConnection.acl('DELUSER', 'noscripts');
    }
  });
});
