import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestRedis } from '../support/redis-server.js';
import { pidOf, SLOW_PROCESSORS, slowDelivery, WorkerCluster } from './fixtures/harness.js';

const TIMEOUT = { timeout: 120_000 };

describe('stopping a worker (SIGTERM)', { concurrency: true }, () => {
  let redis: TestRedis;

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.destroy();
  });

  it(
    'on SIGTERM lets a running job finish within the grace period, then exits 0',
    TIMEOUT,
    async () => {
      const cluster = await WorkerCluster.start(redis, {
        INLET_PROCESSORS: SLOW_PROCESSORS,
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
        INLET_PROCESSORS: SLOW_PROCESSORS,
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
        INLET_PROCESSORS: SLOW_PROCESSORS,
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
