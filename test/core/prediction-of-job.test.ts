import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Queue } from 'bullmq';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { JOB_FIELDS, predictionOfJob, QUEUE_NAME } from '../../src/core/job.js';
import { TestRedis } from '../support/redis-server.js';

describe('predictionOfJob (the stalled-delivery log line, `inlet inspect <webhook-id>`)', () => {
  let redis: TestRedis;
  let client: ReturnType<TestRedis['client']>;
  let queue: Queue;

  before(async () => {
    redis = await TestRedis.start();
    client = redis.client();
    queue = new bullmq.Queue(QUEUE_NAME, { connection: client, prefix: 'pj' });
  });
  after(async () => {
    await queue.close();
    client.disconnect();
    await redis.destroy();
  });

  it('reads the prediction the ingest named in the job, else the one in its data', async () => {
    await queue.add('delivery', { prediction: { id: 'from-data' } }, { jobId: 'a' });
    assert.equal(await predictionOfJob(client, queue.toKey('a')), 'from-data');
    await client.hset(queue.toKey('a'), JOB_FIELDS.prediction, 'named');
    assert.equal(await predictionOfJob(client, queue.toKey('a')), 'named');
  });

  it('is undefined for a job that names none, holds no JSON, or is gone', async () => {
    await queue.add('delivery', { prediction: { id: 7 } }, { jobId: 'b' });
    await client.hset(queue.toKey('c'), 'data', '{not json');
    for (const id of ['b', 'c', 'missing']) {
      assert.equal(await predictionOfJob(client, queue.toKey(id)), undefined, id);
    }
  });
});
