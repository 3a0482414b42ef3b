import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redriveDeadLetters } from '../../src/cli/dead-letter.js';
import { samplePrediction } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';
import { fixture, settledFigures, WorkerCluster } from './fixtures/harness.js';

const TIMEOUT = { timeout: 90_000 };

describe('retries and dead letters', () => {
  let redis: TestRedis;
  let cluster: WorkerCluster;

  before(async () => {
    redis = await TestRedis.start();
    cluster = await WorkerCluster.start(redis, {
      INLET_ATTEMPTS: '3',
      INLET_PROCESSORS: ['record-a.ts', 'flaky.ts', 'broken.ts'].map(fixture).join(','),
    });
    await cluster.startWorkers(2);
  });
  after(async () => {
    await cluster.stop();
    await redis.destroy();
  });

  it('retries a processor that fails twice without re-running its sibling', TIMEOUT, async () => {
    await cluster.client.set(`${cluster.prefix}:test:fixed`, '1'); // keep `broken` out of it
    const prediction = samplePrediction('succeeded');
    prediction.input = { failTimes: 2 };
    const id = await cluster.deliver(prediction);
    await cluster.settle([id]);
    await cluster.client.del(`${cluster.prefix}:test:fixed`);

    const mine = async (name: string, kind: 'runs' | 'tries') =>
      (await cluster.runs(name, kind)).filter((e) => e.startsWith(`${prediction.id}|`));
    assert.equal((await mine('flaky', 'tries')).length, 3, 'flaky ran three times');
    assert.deepEqual(
      (await mine('flaky', 'runs')).map((e) => e.split('|')[2]),
      ['3'],
      'and succeeded on the third attempt',
    );
    assert.equal((await mine('record-a', 'tries')).length, 1, 'its sibling ran once');
    const job = await cluster.job(id);
    assert.equal(job.attemptsMade, 3);
    const figures = await settledFigures(cluster.client, cluster.prefix);
    assert.equal(figures.processors.get('flaky')?.error, 2);
    assert.equal(figures.events.retried, 2);
  });

  it(
    'dead-letters a processor that always fails, keeps the error, and re-drives it once fixed',
    TIMEOUT,
    async () => {
      const prediction = samplePrediction('succeeded');
      const id = await cluster.deliver(prediction);
      await cluster.settle([id], 'failed');

      const tries = async (name: string) =>
        (await cluster.runs(name, 'tries')).filter((e) => e.startsWith(`${prediction.id}|`)).length;
      assert.equal(await tries('broken'), 3, 'INLET_ATTEMPTS tries');
      assert.equal(await tries('record-a'), 1);
      const job = await cluster.job(id);
      assert.equal(job.failedReason, 'broken: bucket does not exist');
      assert.equal(job.attemptsMade, 3);
      const { logs } = await cluster.queue.getJobLogs(job.id as string);
      assert.equal(logs.length, 3);
      assert.match(logs[2] ?? '', /^attempt 3: broken failed: bucket does not exist$/);

      const listed = await redriveDeadLetters({
        redis: cluster.client,
        prefix: cluster.prefix,
        predictionId: prediction.id,
        dryRun: true,
      });
      assert.deepEqual(listed, {
        matched: 1,
        moved: 0,
        deliveries: [
          {
            webhookId: id,
            predictionId: prediction.id,
            error: 'broken: bucket does not exist',
            attempts: 3,
            failedProcessors: ['broken'],
          },
        ],
      });
      const other = await redriveDeadLetters({
        redis: cluster.client,
        prefix: cluster.prefix,
        predictionId: 'some-other-prediction',
      });
      assert.equal(other.matched, 0);
      assert.equal(await cluster.state(id), 'failed');

      await cluster.client.set(`${cluster.prefix}:test:fixed`, '1'); // the fix is deployed
      const progress: Array<[number, number]> = [];
      const redriven = await redriveDeadLetters({
        redis: cluster.client,
        prefix: cluster.prefix,
        predictionId: prediction.id,
        onProgress: (done, total) => progress.push([done, total]),
      });
      assert.equal(redriven.moved, 1);
      assert.deepEqual(progress.at(-1), [1, 1]);
      await cluster.settle([id]);
      assert.equal(await tries('broken'), 4);
      assert.equal(await tries('record-a'), 1, 'the sibling did not run again');
      assert.deepEqual((await cluster.job(id)).returnvalue, {
        outcome: 'processed',
        ran: ['broken'],
      });
      const figures = await settledFigures(cluster.client, cluster.prefix);
      assert.equal(figures.events.redriven, 1);
      await cluster.client.del(`${cluster.prefix}:test:fixed`);
    },
  );

  it(
    'dead-letters at once on UnrecoverableError; a dashboard retry re-drives it the same way',
    TIMEOUT,
    async () => {
      const prediction = samplePrediction('succeeded');
      prediction.input = { unrecoverable: true };
      const id = await cluster.deliver(prediction);
      await cluster.settle([id], 'failed');
      const tries = async (name: string) =>
        (await cluster.runs(name, 'tries')).filter((e) => e.startsWith(`${prediction.id}|`)).length;
      assert.equal(await tries('broken'), 1, 'no retry');
      assert.equal((await cluster.job(id)).failedReason, 'broken: input can never work');

      await cluster.client.set(`${cluster.prefix}:test:fixed`, '1');
      await (await cluster.job(id)).retry('failed'); // what bull-board's retry button does
      await cluster.settle([id]);
      assert.equal(await tries('broken'), 2);
      assert.equal(await tries('record-a'), 1);
      await cluster.client.del(`${cluster.prefix}:test:fixed`);
    },
  );

  it('re-drives every dead letter with --all semantics', TIMEOUT, async () => {
    const ids = [
      await cluster.deliver(samplePrediction('succeeded')),
      await cluster.deliver(samplePrediction('succeeded')),
    ];
    await cluster.settle(ids, 'failed');
    await cluster.client.set(`${cluster.prefix}:test:fixed`, '1');
    const result = await redriveDeadLetters({ redis: cluster.client, prefix: cluster.prefix });
    assert.equal(result.moved, 2);
    assert.deepEqual(result.deliveries.map((d) => d.webhookId).sort(), [...ids].sort());
    await cluster.settle(ids);
    await waitFor('no dead letters', async () => (await cluster.queue.getFailedCount()) === 0, {
      timeoutMs: 5_000,
    });
    await cluster.client.del(`${cluster.prefix}:test:fixed`);
  });
});
