import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jobIdFor } from '../../src/core/job.js';
import { samplePrediction } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import { fixture, WorkerCluster } from './fixtures/harness.js';

const TIMEOUT = { timeout: 60_000 };
const HOUR_MS = 3_600_000;

/**
 * How long finished deliveries are kept is the workers' setting (deliveryRetention): the ingest
 * stores no retention in the job. BullMQ removes finished jobs past their age when a worker
 * finishes another one, so each case ages a finished job by its score, finishes another, and
 * looks whether the first is gone.
 */
describe('retention of finished deliveries', () => {
  let redis: TestRedis;
  let cluster: WorkerCluster;

  before(async () => {
    redis = await TestRedis.start();
    cluster = await WorkerCluster.start(redis, {
      INLET_ATTEMPTS: '1',
      INLET_DEAD_LETTER_RETENTION_SECONDS: '7200',
      INLET_PROCESSORS: fixture('broken.ts'),
    });
    await cluster.startWorkers(1);
  });
  after(async () => {
    await cluster.stop();
    await redis.destroy();
  });

  /** Delivers one prediction and waits until it is `state`: `broken` fails unless fixed. */
  async function finished(state: 'completed' | 'failed'): Promise<string> {
    const fixed = `${cluster.prefix}:test:fixed`;
    if (state === 'completed') await cluster.client.set(fixed, '1');
    else await cluster.client.del(fixed);
    const id = await cluster.deliver(samplePrediction('succeeded'));
    await cluster.settle([id], state);
    return id;
  }

  /** Makes a finished delivery look `ageMs` old to BullMQ, which ages jobs by this score. */
  async function age(id: string, state: 'completed' | 'failed', ageMs: number) {
    const set = `${cluster.prefix}:deliveries:${state}`;
    assert.equal(await cluster.client.zadd(set, 'XX', 'CH', Date.now() - ageMs, jobIdFor(id)), 1);
  }

  it('a completed delivery is kept an hour', TIMEOUT, async () => {
    const old = await finished('completed');
    const recent = await finished('completed');
    await age(old, 'completed', HOUR_MS + 60_000);
    await age(recent, 'completed', HOUR_MS - 60_000);
    await finished('completed');
    assert.equal(
      await cluster.queue.getJob(jobIdFor(old)),
      undefined,
      'older than an hour: removed',
    );
    assert.equal(await cluster.state(recent), 'completed', 'younger: kept');
  });

  it('a dead letter is kept INLET_DEAD_LETTER_RETENTION_SECONDS', TIMEOUT, async () => {
    const old = await finished('failed');
    const recent = await finished('failed');
    await age(old, 'failed', 2 * HOUR_MS + 60_000);
    await age(recent, 'failed', 2 * HOUR_MS - 60_000);
    await finished('failed');
    assert.equal(await cluster.queue.getJob(jobIdFor(old)), undefined, 'older: removed');
    assert.equal(await cluster.state(recent), 'failed', 'younger: kept');
  });

  it('the job itself names no retention: the workers decide', TIMEOUT, async () => {
    const job = await cluster.job(await finished('completed'));
    assert.equal(job.opts.removeOnComplete, undefined);
    assert.equal(job.opts.removeOnFail, undefined);
  });
});
