import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redriveDeadLetters } from '../../src/cli/dead-letter.js';
import { TestRedis } from '../support/redis-server.js';
import { pidOf, SLOW_PROCESSORS, slowDelivery, WorkerCluster } from './fixtures/harness.js';

const TIMEOUT = { timeout: 120_000 };

describe('crash safety', { concurrency: true }, () => {
  let redis: TestRedis;

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.destroy();
  });

  it(
    'finishes a SIGKILLed worker’s job on the other worker, without re-running what succeeded',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, { INLET_PROCESSORS: SLOW_PROCESSORS });
      try {
        const { id, predictionId, holder, other } = await slowDelivery(cluster, { sleepMs: 2500 });
        holder.kill('SIGKILL');
        await holder.exited;
        await cluster.settle([id], 'completed', 60_000);

        assert.equal((await cluster.runs('record-a', 'tries')).length, 1, 'record-a not re-run');
        const slowRuns = await cluster.runs('slow');
        assert.equal(slowRuns.length, 1, 'slow completed once');
        assert.equal(pidOf(slowRuns[0]), other.pid, 'on the other worker');
        assert.equal((await cluster.runs('slow', 'tries')).length, 2);
        assert.equal(await cluster.overlaps(), 0);
        assert.ok(
          other.lines.some(
            (l) =>
              String(l.msg).includes('stalled') &&
              l.webhookId === id &&
              l.predictionId === predictionId,
          ),
          'the takeover is logged with the webhook and prediction ids',
        );
      } finally {
        await cluster.stop();
      }
    },
  );

  it(
    'dead-letters a delivery that keeps killing its workers, and re-drives it',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, {
        INLET_PROCESSORS: SLOW_PROCESSORS,
        INLET_MAX_STALLED_COUNT: '0',
      });
      try {
        const { id, holder } = await slowDelivery(cluster, { sleepMs: 1500 });
        holder.kill('SIGKILL');
        await cluster.settle([id], 'failed', 60_000);
        assert.match((await cluster.job(id)).failedReason, /stalled more than allowable limit/);
        const listed = await redriveDeadLetters({ redis: cluster.client, prefix: cluster.prefix });
        assert.equal(listed.moved, 1);
        assert.equal(listed.deliveries[0]?.webhookId, id);
        assert.ok(listed.deliveries[0]?.predictionId, 'the prediction is known');
        await cluster.settle([id], 'completed', 60_000);
        assert.equal((await cluster.runs('slow')).length, 1);
        assert.equal((await cluster.runs('record-a', 'tries')).length, 1, 'record-a not re-run');
      } finally {
        await cluster.stop();
      }
    },
  );
});
