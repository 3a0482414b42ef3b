import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redriveDeadLetters } from '../../src/cli/dead-letter.js';
import { samplePrediction } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import {
  type WorkerCluster as Cluster,
  fixture,
  WorkerCluster,
  waitFor,
} from './fixtures/harness.js';

const TIMEOUT = { timeout: 120_000 };
const PROCESSORS = ['record-a.ts', 'slow.ts'].map(fixture).join(',');

/** Which worker process a recorded entry came from. */
const pidOf = (entry: string | undefined) => Number(entry?.split('|')[3]);

describe('crash safety', () => {
  let redis: TestRedis;

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.destroy();
  });

  /** Starts two workers, delivers a slow prediction and waits until `slow` is running. */
  async function slowDelivery(cluster: Cluster, input: Record<string, unknown>) {
    const workers = await cluster.startWorkers(2);
    const prediction = samplePrediction('succeeded');
    prediction.input = input;
    const id = await cluster.deliver(prediction);
    await waitFor(async () => (await cluster.runs('slow', 'tries')).length === 1, 20_000, 'slow');
    const pid = pidOf((await cluster.runs('slow', 'tries'))[0]);
    const holder = workers.find((w) => w.pid === pid);
    const other = workers.find((w) => w.pid !== pid);
    assert.ok(holder && other);
    return { id, holder, other };
  }

  it(
    'finishes a SIGKILLed worker’s job on the other worker, without re-running what succeeded',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, { INLET_PROCESSORS: PROCESSORS });
      try {
        const { id, holder, other } = await slowDelivery(cluster, { sleepMs: 2500 });
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
          other.lines.some((l) => String(l.msg).includes('stalled') && l.webhookId === id),
          'the takeover is logged with the webhook id',
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
        INLET_PROCESSORS: PROCESSORS,
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

  it(
    'on SIGTERM lets a running job finish within the grace period, then exits 0',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, {
        INLET_PROCESSORS: PROCESSORS,
        INLET_SHUTDOWN_GRACE_MS: '10000',
      });
      try {
        const { id, holder } = await slowDelivery(cluster, { sleepMs: 1500 });
        holder.kill('SIGTERM');
        assert.deepEqual(await holder.exited, { code: 0, signal: null });
        assert.equal(await cluster.state(id), 'completed');
        const slowRuns = await cluster.runs('slow');
        assert.equal(slowRuns.length, 1);
        assert.equal(pidOf(slowRuns[0]), holder.pid, 'finished by the stopping worker');
      } finally {
        await cluster.stop();
      }
    },
  );

  it(
    'on SIGTERM past the grace period aborts ctx.signal and hands the job back',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, {
        INLET_PROCESSORS: PROCESSORS,
        INLET_SHUTDOWN_GRACE_MS: '300',
      });
      try {
        const { id, holder, other } = await slowDelivery(cluster, { sleepMs: 4000 });
        holder.kill('SIGTERM');
        assert.deepEqual(await holder.exited, { code: 0, signal: null });
        assert.ok(holder.lines.some((l) => l.msg === 'delivery handed back to the queue'));
        await cluster.settle([id], 'completed', 60_000);
        const slowRuns = await cluster.runs('slow');
        assert.equal(slowRuns.length, 1);
        assert.equal(pidOf(slowRuns[0]), other.pid);
        assert.equal((await cluster.runs('record-a', 'tries')).length, 1, 'record-a not re-run');
        // One attempt: the one that completed. Handing back used none.
        assert.equal((await cluster.job(id)).attemptsMade, 1);
      } finally {
        await cluster.stop();
      }
    },
  );

  it(
    'on SIGTERM hands back a job whose processor ignores the abort, and still exits 0',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, {
        INLET_PROCESSORS: PROCESSORS,
        INLET_SHUTDOWN_GRACE_MS: '200',
      });
      try {
        const { id, holder, other } = await slowDelivery(cluster, {
          sleepMs: 6000,
          ignoreAbort: true,
        });
        holder.kill('SIGTERM');
        assert.deepEqual(await holder.exited, { code: 0, signal: null });
        await cluster.settle([id], 'completed', 60_000);
        const slowRuns = await cluster.runs('slow');
        assert.equal(slowRuns.length, 1);
        assert.equal(pidOf(slowRuns[0]), other.pid);
        assert.equal(await cluster.overlaps(), 0, 'the other worker waited for the lock to lapse');
      } finally {
        await cluster.stop();
      }
    },
  );
});
