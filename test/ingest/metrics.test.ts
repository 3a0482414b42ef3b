import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { loadConfig } from '../../src/core/config.js';
import { QUEUE_NAME } from '../../src/core/job.js';
import { createLogger } from '../../src/core/logger.js';
import { recordProcessorRun, recordWorkerEvent } from '../../src/core/worker-figures.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { waitUntilReady } from '../support/dashboard-stack.js';
import { makeSecret, samplePrediction, signedHeaders, webhookId } from '../support/deliveries.js';
import { startReadyIngest } from '../support/ingest.js';
import { type Scrape, scrape } from '../support/prometheus.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

const MAX_BODY = 5 * 1024 * 1024;
/** Far above the exporter's 1 s read timeout: only a scrape that waits on Redis reaches it. */
const SCRAPE_DEADLINE_MS = 20_000;

describe('GET /metrics', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let secret: string;
  let prefix: string;
  let webhookUrl: string;

  before(async () => {
    redis = await TestRedis.start();
    secret = makeSecret();
    prefix = `metrics-${randomBytes(4).toString('hex')}`;
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_PREFIX: prefix,
      INLET_MAX_BODY_BYTES: String(MAX_BODY),
    });
    const logger = createLogger({ level: 'silent' });
    ingest = await startReadyIngest({ config, logger, drainTimeoutMs: 1000 });
    webhookUrl = `${ingest.url}/webhooks/replicate`;
    await waitUntilReady(ingest.url);
  });

  after(async () => {
    await ingest?.close();
    await redis?.destroy();
  });

  const post = (body: string | Buffer, headers: Record<string, string>) =>
    fetch(webhookUrl, { method: 'POST', body, headers }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });

  const signed = (id = webhookId(), at = new Date()) => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    return { body, headers: signedHeaders(secret, body, id, at) };
  };

  const deliveries = (s: Scrape, outcome: string) => s.get('inlet_deliveries_total', { outcome });
  const acks = (s: Scrape, outcome: string) =>
    s.get('inlet_ack_duration_seconds_count', { outcome });
  const queueJobs = (s: Scrape, state: string) =>
    s.get('inlet_queue_jobs', { queue: QUEUE_NAME, state });

  let baseline: Scrape;

  it('exports every delivery outcome at 0 before the first delivery', async () => {
    baseline = await scrape(ingest.url);
    for (const outcome of [
      'accepted',
      'duplicate',
      'invalid_signature',
      'stale',
      'malformed',
      'too_large',
      'unsupported_media_type',
      'unavailable',
    ]) {
      assert.equal(deliveries(baseline, outcome), 0, outcome);
      assert.equal(acks(baseline, outcome), 0, outcome);
    }
    assert.equal(baseline.get('inlet_redis_up'), 1);
    assert.equal(queueJobs(baseline, 'waiting'), 0);
  });

  it('counts a known mix of deliveries, each outcome by exactly its number', async () => {
    const first = signed();
    assert.equal(await post(first.body, first.headers), 202);
    for (let i = 0; i < 2; i++) {
      const other = signed();
      assert.equal(await post(other.body, other.headers), 202);
    }
    // Two repeats of the first message: duplicates.
    assert.equal(await post(first.body, first.headers), 200);
    assert.equal(await post(first.body, first.headers), 200);

    const forged = signed();
    const wrongKey = signedHeaders(makeSecret(), forged.body);
    assert.equal(await post(forged.body, wrongKey), 401);

    for (let i = 0; i < 2; i++) {
      const old = signed(webhookId(), new Date(Date.now() - 15 * 60_000));
      assert.equal(await post(old.body, old.headers), 401);
    }

    const noHeaders = signed();
    assert.equal(await post(noHeaders.body, { 'content-type': 'application/json' }), 400);
    const notJson = '{"id": "abc", "status": ';
    assert.equal(await post(notJson, signedHeaders(secret, notJson)), 400);

    const huge = Buffer.alloc(MAX_BODY + 1, 0x20);
    assert.equal(await post(huge, signedHeaders(secret, 'x')), 413);

    const text = signed();
    assert.equal(await post(text.body, { ...text.headers, 'content-type': 'text/plain' }), 415);

    const now = await scrape(ingest.url);
    const expected: Record<string, number> = {
      accepted: 3,
      duplicate: 2,
      invalid_signature: 1,
      stale: 2,
      malformed: 2,
      too_large: 1,
      unsupported_media_type: 1,
      unavailable: 0,
    };
    for (const [outcome, count] of Object.entries(expected)) {
      const moved = (deliveries(now, outcome) ?? NaN) - (deliveries(baseline, outcome) ?? NaN);
      assert.equal(moved, count, `inlet_deliveries_total{outcome="${outcome}"}`);
      const timed = (acks(now, outcome) ?? NaN) - (acks(baseline, outcome) ?? NaN);
      assert.equal(timed, count, `inlet_ack_duration_seconds_count{outcome="${outcome}"}`);
    }
    const inf = now.get('inlet_ack_duration_seconds_bucket', { outcome: 'accepted', le: '+Inf' });
    assert.equal(inf, 3);
  });

  it('reads queue depth and the oldest waiting delivery from Redis at scrape time', async () => {
    const queue = new bullmq.Queue(QUEUE_NAME, { connection: { url: redis.url }, prefix });
    const [oldest] = await queue.getWaiting(0, 0).finally(() => queue.close());
    const addedAt = oldest?.timestamp ?? NaN;
    const scrapedFrom = Date.now();
    const now = await scrape(ingest.url);
    const scrapedTo = Date.now();
    assert.equal(queueJobs(now, 'waiting'), 3);
    assert.equal(queueJobs(now, 'failed'), 0);
    assert.equal(now.get('inlet_dead_letter_jobs', { queue: QUEUE_NAME }), 0);
    // The age is the scrape's time minus the oldest job's timestamp, whenever the scrape ran.
    const age = now.get('inlet_queue_oldest_waiting_age_seconds', { queue: QUEUE_NAME }) ?? NaN;
    const low = (scrapedFrom - addedAt) / 1000;
    const high = (scrapedTo - addedAt) / 1000;
    assert.ok(age >= low - 0.001 && age <= high + 0.001, `age ${age} outside [${low}, ${high}]`);
  });

  it('exports the figures workers keep in Redis, as one scrape target for all of them', async () => {
    const client = redis.client();
    try {
      const tx = client.multi();
      recordProcessorRun(tx, prefix, 'save-outputs', true, 0.003);
      recordProcessorRun(tx, prefix, 'save-outputs', true, 0.2);
      recordProcessorRun(tx, prefix, 'save-outputs', false, 3);
      recordProcessorRun(tx, prefix, 'notify|slack', true, 120);
      recordWorkerEvent(tx, prefix, 'retried', 2);
      recordWorkerEvent(tx, prefix, 'dead_lettered');
      await tx.exec();
    } finally {
      client.disconnect();
    }
    const now = await scrape(ingest.url);
    const runs = (processor: string, result: string) =>
      now.get('inlet_processor_runs_total', { processor, result });
    assert.equal(runs('save-outputs', 'ok'), 2);
    assert.equal(runs('save-outputs', 'error'), 1);
    assert.equal(runs('notify|slack', 'ok'), 1);

    const bucket = (processor: string, le: string) =>
      now.get('inlet_processor_run_duration_seconds_bucket', { processor, le });
    assert.equal(bucket('save-outputs', '0.005'), 1);
    assert.equal(bucket('save-outputs', '0.1'), 1);
    assert.equal(bucket('save-outputs', '0.25'), 2);
    assert.equal(bucket('save-outputs', '2.5'), 2);
    assert.equal(bucket('save-outputs', '5'), 3);
    assert.equal(bucket('save-outputs', '+Inf'), 3);
    assert.equal(bucket('notify|slack', '60'), 0);
    assert.equal(bucket('notify|slack', '+Inf'), 1);
    const sum = now.get('inlet_processor_run_duration_seconds_sum', { processor: 'save-outputs' });
    assert.ok(Math.abs((sum ?? NaN) - 3.203) < 1e-9, `sum ${sum}`);
    assert.equal(
      now.get('inlet_processor_run_duration_seconds_count', { processor: 'save-outputs' }),
      3,
    );

    const events = (event: string) => now.get('inlet_worker_events_total', { event });
    assert.equal(events('retried'), 2);
    assert.equal(events('dead_lettered'), 1);
    assert.equal(events('processed'), 0);
  });

  it('counts dead-lettered deliveries (the failed state) and empties the waiting count', async () => {
    const connection = { url: redis.url, maxRetriesPerRequest: null };
    const worker = new bullmq.Worker(
      QUEUE_NAME,
      async () => {
        throw new bullmq.UnrecoverableError('processor gave up');
      },
      { connection, prefix, autorun: true },
    );
    const queue = new bullmq.Queue(QUEUE_NAME, { connection, prefix });
    try {
      await waitFor('3 dead-lettered jobs', async () => (await queue.getFailedCount()) >= 3);
    } finally {
      await worker.close();
      await queue.close();
    }
    const now = await scrape(ingest.url);
    assert.equal(now.get('inlet_dead_letter_jobs', { queue: QUEUE_NAME }), 3);
    assert.equal(queueJobs(now, 'failed'), 3);
    assert.equal(queueJobs(now, 'waiting'), 0);
    assert.equal(now.get('inlet_queue_oldest_waiting_age_seconds', { queue: QUEUE_NAME }), 0);
  });

  it('answers a scrape while Redis hangs (stopped, not gone)', async () => {
    redis.freeze();
    try {
      // Redis never answers while frozen: a scrape that waited for it would hang to the deadline.
      const now = await scrape(ingest.url, SCRAPE_DEADLINE_MS);
      assert.equal(now.get('inlet_redis_up'), 0);
      assert.equal(deliveries(now, 'accepted'), 3);
      assert.equal(now.has('inlet_queue_jobs'), false);
    } finally {
      redis.thaw();
    }
    await waitUntilReady(ingest.url);
    assert.equal((await scrape(ingest.url)).get('inlet_redis_up'), 1);
  });

  it('counts 503s while Redis is down, and still answers a scrape at once', async () => {
    const before = await scrape(ingest.url);
    await redis.stop();
    const delivery = signed();
    assert.equal(await post(delivery.body, delivery.headers), 503);

    const now = await scrape(ingest.url, SCRAPE_DEADLINE_MS);
    assert.equal(now.get('inlet_redis_up'), 0);
    const moved =
      (deliveries(now, 'unavailable') ?? NaN) - (deliveries(before, 'unavailable') ?? NaN);
    assert.equal(moved, 1);
    assert.equal(deliveries(now, 'accepted'), 3);
    // Figures that cannot be read are withdrawn, never shown as a reassuring 0.
    assert.equal(now.has('inlet_queue_jobs'), false);
    assert.equal(now.has('inlet_dead_letter_jobs'), false);
    assert.equal(now.has('inlet_queue_oldest_waiting_age_seconds'), false);
    assert.equal(now.has('inlet_processor_runs_total'), false);
  });
});
