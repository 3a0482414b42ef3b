import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullmq } from '../../../src/core/commonjs-packages.js';
import { loadConfig } from '../../../src/core/config.js';
import {
  DELIVERY_JOB_NAME,
  type DeliveryJob,
  deliveryJobOptions,
  jobIdFor,
  keys,
  QUEUE_NAME,
} from '../../../src/core/job.js';
import { BULLMQ_VERSION } from '../../../src/core/scripts/bullmq-script.js';
import { oldestWaiting1 } from '../../../src/core/scripts/oldest-waiting-1.js';
import { defineScripts } from '../../../src/core/scripts/redis-script.js';
import { DeliveryEnqueuer } from '../../../src/ingest/enqueue-delivery.js';
import { makeSecret, samplePrediction, webhookId } from '../../support/deliveries.js';
import { countSocketWrites, socketReads, TestRedis } from '../../support/redis-server.js';

/**
 * storeDelivery-11 wraps BullMQ's private addStandardJob script. These tests are what keeps that
 * safe: the pin, the crafted states (seen, stored, resent), and a job stored this way compared
 * field by field with one stored by BullMQ's public `Queue.add`.
 */

let redis: TestRedis;
let client: Redis;

before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
});
after(async () => {
  client.disconnect();
  await redis.destroy();
});

function delivery(id = webhookId()): DeliveryJob {
  return {
    webhookId: id,
    timestamp: 1_700_000_000,
    receivedAt: 1_700_000_000_123,
    query: { customId: '123', tag: ['a', 'b'] },
    prediction: samplePrediction('succeeded'),
  };
}

function setup(prefix: string) {
  const config = loadConfig({
    REDIS_URL: redis.url,
    REPLICATE_WEBHOOK_SECRET: makeSecret(),
    INLET_PREFIX: prefix,
  });
  const queue = new bullmq.Queue<DeliveryJob>(QUEUE_NAME, { connection: client, prefix });
  const enqueuer = new DeliveryEnqueuer(queue, client, config);
  return { config, queue, enqueuer };
}

describe('the BullMQ pin', () => {
  it('package.json pins bullmq to exactly the version storeDelivery wraps, and it is installed', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    assert.equal(pkg.dependencies.bullmq, BULLMQ_VERSION);
    const installed = createRequire(import.meta.url)('bullmq/package.json').version;
    assert.equal(installed, BULLMQ_VERSION);
  });
});

describe('storeDelivery-11', () => {
  let config: ReturnType<typeof setup>['config'];
  let queue: Queue<DeliveryJob>;
  let enqueuer: DeliveryEnqueuer;
  before(() => {
    ({ config, queue, enqueuer } = setup('store'));
  });

  const cases: Array<{
    name: string;
    craft: (id: string) => Promise<unknown>;
    outcome: 'accepted' | 'duplicate';
    stored: boolean;
  }> = [
    {
      name: 'fresh id: stored, then marked seen',
      craft: async () => 0,
      outcome: 'accepted',
      stored: true,
    },
    {
      name: 'seen (its job already removed): duplicate, nothing stored',
      craft: (id) => client.set(keys.seen('store', id), 's', 'EX', 60),
      outcome: 'duplicate',
      stored: false,
    },
    {
      name: 'stored without a seen mark (older data): duplicate',
      craft: (id) =>
        queue.add(DELIVERY_JOB_NAME, delivery(id), deliveryJobOptions(config, jobIdFor(id))),
      outcome: 'duplicate',
      stored: true,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const id = webhookId();
      await c.craft(id);
      assert.equal(await enqueuer.enqueueDelivery(delivery(id)), c.outcome);
      assert.equal((await queue.getJob(jobIdFor(id))) !== undefined, c.stored);
      if (c.outcome === 'accepted') {
        const ttl = await client.ttl(keys.seen('store', id));
        const window = config.INLET_DEDUP_WINDOW_SECONDS;
        assert.ok(ttl > window - 5 && ttl <= window, `seen mark ttl ${ttl}`);
      }
    });
  }

  it('stores sent in one turn of the event loop leave in one write, each answered', async () => {
    const readsBefore = await socketReads(client);
    const writes = countSocketWrites(client);
    const ids = Array.from({ length: 10 }, () => webhookId());
    const outcomes = await Promise.all(ids.map((id) => enqueuer.enqueueDelivery(delivery(id))));
    writes.stop();
    const readsAfter = await socketReads(client);

    assert.deepEqual(outcomes, Array(10).fill('accepted'));
    assert.equal(
      (await queue.getJobs(['wait'])).filter((job) => ids.includes(job.data.webhookId)).length,
      10,
    );
    // One write for the ten stores, so one read of Redis's, and one for the second INFO.
    assert.equal(writes.count(), 1);
    assert.equal(readsAfter - readsBefore, 2);
  });

  it('resent after it stored the job: duplicate, one job', async () => {
    const id = webhookId();
    assert.equal(await enqueuer.enqueueDelivery(delivery(id)), 'accepted');
    assert.equal(await enqueuer.enqueueDelivery(delivery(id)), 'duplicate');
    const waiting = await client.lrange(`store:${QUEUE_NAME}:wait`, 0, -1);
    assert.equal(waiting.filter((jobId) => jobId === id).length, 1);
  });

  it('stores an all-digit webhook id under its # job id', async () => {
    const id = String(Date.now());
    assert.equal(await enqueuer.enqueueDelivery(delivery(id)), 'accepted');
    assert.equal((await queue.getJob(`#${id}`))?.data.webhookId, id);
  });
});

describe('a job stored by storeDelivery and one stored by Queue.add', () => {
  const ids = ['msg_contract', '12', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(200)];
  for (const [index, id] of ids.entries()) {
    it(`are the same, field by field (webhook-id ${id.slice(0, 40)})`, () =>
      sameAsQueueAdd(`ours${index}`, `theirs${index}`, id));
  }

  it('come from the template encoder, whose check at start passed', () => {
    assert.equal(setup('template').enqueuer.encoding, 'template');
  });
});

/** Stores `id`'s delivery through storeDelivery and through `Queue.add`, and compares all. */
/**
 * The job's hash without the two fields storeDelivery-11 adds for the worker's fetch script,
 * after checking them: the prediction's id and status, which BullMQ's own job has not.
 */
function withoutInletFields(
  job: Record<string, string>,
  data: DeliveryJob,
): Record<string, string> {
  const { 'inlet:prediction': prediction, 'inlet:status': status, ...bullmqFields } = job;
  assert.equal(prediction, data.prediction.id);
  assert.equal(status, data.prediction.status);
  return bullmqFields;
}

async function sameAsQueueAdd(oursPrefix: string, theirsPrefix: string, id: string) {
  const ours = setup(oursPrefix);
  const theirs = setup(theirsPrefix);
  const data = delivery(id);
  const jobId = jobIdFor(id);
  assert.equal(await ours.enqueuer.enqueueDelivery(data), 'accepted');
  await theirs.queue.add(DELIVERY_JOB_NAME, data, deliveryJobOptions(theirs.config, jobId));

  const job = (prefix: string) => client.hgetall(`${prefix}:${QUEUE_NAME}:${jobId}`);
  const [stored, b] = await Promise.all([job(oursPrefix), job(theirsPrefix)]);
  const a = withoutInletFields(stored, data);
  // Stored a few milliseconds apart: only the clock may differ.
  assert.ok(Math.abs(Number(a.timestamp) - Number(b.timestamp)) < 60_000);
  assert.deepEqual({ ...a, timestamp: '' }, { ...b, timestamp: '' });
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  assert.deepEqual(JSON.parse(a.data ?? ''), data);

  // The same lists, markers and events around it.
  const list = (prefix: string) => client.lrange(`${prefix}:${QUEUE_NAME}:wait`, 0, -1);
  assert.deepEqual(await list(oursPrefix), await list(theirsPrefix));
  const events = async (prefix: string) =>
    (await client.xrange(`${prefix}:${QUEUE_NAME}:events`, '-', '+')).map(([, fields]) => fields);
  assert.deepEqual(await events(oursPrefix), await events(theirsPrefix));
  const marker = (prefix: string) => client.zrange(`${prefix}:${QUEUE_NAME}:marker`, 0, -1);
  assert.deepEqual(await marker(oursPrefix), await marker(theirsPrefix));
  const meta = (prefix: string) => client.hgetall(`${prefix}:${QUEUE_NAME}:meta`);
  assert.deepEqual(await meta(oursPrefix), await meta(theirsPrefix));

  // And BullMQ reads it back as the job it would have written.
  const read = await ours.queue.getJob(jobId);
  const written = await theirs.queue.getJob(jobId);
  assert.deepEqual(read?.opts, written?.opts);
  assert.deepEqual(read?.data, written?.data);
  assert.equal(read?.name, written?.name);
}

describe('oldestWaiting-1', () => {
  it('answers the timestamp of the job taken next, or nil when none waits', async () => {
    defineScripts(client, oldestWaiting1);
    const { queue, config } = setup('oldest');
    const wait = `oldest:${QUEUE_NAME}:wait`;
    const jobPrefix = `oldest:${QUEUE_NAME}:`;
    assert.equal(await client.inletOldestWaiting(wait, jobPrefix), null);
    const first = await queue.add('x', delivery(), {
      ...deliveryJobOptions(config, 'j1'),
      timestamp: 1000,
    });
    await queue.add('x', delivery(), { ...deliveryJobOptions(config, 'j2'), timestamp: 2000 });
    assert.equal(first.id, 'j1');
    assert.equal(await client.inletOldestWaiting(wait, jobPrefix), '1000');
  });

  it('stored with the prediction’s JSON text as sent: every field the same but data, which parses the same', async () => {
    const ours = setup('raw-ours');
    const theirs = setup('raw-theirs');
    const id = 'msg_raw_text';
    const data = delivery(id);
    // Whitespace and escapes as a sender may write them; the same prediction once parsed.
    const text = ` {\n "id" : "${data.prediction.id}",\n "status":"succ\\u0065eded", "x": [1.50, 2e2] } `;
    data.prediction = JSON.parse(text);
    assert.equal(await ours.enqueuer.enqueueDelivery(data, text), 'accepted');
    await theirs.queue.add(DELIVERY_JOB_NAME, data, deliveryJobOptions(theirs.config, id));
    const job = (prefix: string) => client.hgetall(`${prefix}:${QUEUE_NAME}:${id}`);
    const [stored, b] = await Promise.all([job('raw-ours'), job('raw-theirs')]);
    const a = withoutInletFields(stored, data);
    assert.deepEqual({ ...a, timestamp: '', data: '' }, { ...b, timestamp: '', data: '' });
    assert.deepEqual(JSON.parse(a.data ?? ''), JSON.parse(b.data ?? ''));
    assert.deepEqual(JSON.parse(a.data ?? ''), data);
    assert.deepEqual((await ours.queue.getJob(id))?.data, (await theirs.queue.getJob(id))?.data);
  });
});
