import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import type { Logger } from '../../src/core/logger.js';
import type { Prediction } from '../../src/core/prediction.js';
import { type IngestServer, startIngest } from '../../src/ingest/server.js';
import { ledgerKeys } from '../../src/workers/prediction-ledger.js';
import { makeSecret, samplePrediction, signedHeaders, webhookId } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import { fixture, settledFigures, WorkerCluster } from './fixtures/harness.js';

describe('once per prediction, across worker processes', () => {
  let redis: TestRedis;

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.destroy();
  });

  it('runs each terminal processor exactly once for 20 concurrent deliveries of one succeeded state', {
    timeout: 60_000,
  }, async () => {
    const cluster = await WorkerCluster.start(redis, {
      INLET_PROCESSORS: [fixture('record-a.ts'), fixture('record-b.ts')].join(','),
    });
    const secret = makeSecret();
    const ingest = await startQuietIngest(cluster, secret);
    try {
      await cluster.startWorkers(2);
      const prediction = samplePrediction('succeeded');
      prediction.input = { sleepMs: 150 };
      const body = JSON.stringify(prediction);
      const ids = Array.from({ length: 20 }, () => webhookId());
      const answers = await Promise.all(
        ids.map((id) =>
          fetch(`${ingest.url}/webhooks/replicate`, {
            method: 'POST',
            headers: signedHeaders(secret, body, id),
            body,
          }),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        ids.map(() => 202),
      );
      await cluster.settle(ids);

      assert.equal((await cluster.runs('record-a')).length, 1, 'record-a ran once');
      assert.equal((await cluster.runs('record-b')).length, 1, 'record-b ran once');
      assert.equal((await cluster.runs('record-a', 'tries')).length, 1, 'record-a started once');
      assert.equal(await cluster.overlaps(), 0, 'no two processors of the prediction overlapped');

      const results = await Promise.all(ids.map(async (id) => (await cluster.job(id)).returnvalue));
      const outcomes = results.map((r) => (r as { outcome: string }).outcome).sort();
      assert.deepEqual(outcomes.filter((o) => o === 'processed').length, 1);
      assert.deepEqual(outcomes.filter((o) => o === 'already_done').length, 19);

      // Both worker processes took part: the deliveries were really contended.
      const busy = cluster.workers.filter((w) => w.lines.some((l) => l.webhookId !== undefined));
      assert.equal(busy.length, 2, 'both workers handled deliveries');

      const ledger = await cluster.client.hgetall(
        ledgerKeys.prediction(cluster.prefix, prediction.id),
      );
      assert.equal(ledger.status, 'succeeded');
      // `done:<processor>` → `<webhook id> <try token>` of the run that succeeded.
      const doneBy = (processor: string) => String(ledger[`done:${processor}`]).split(' ')[0];
      assert.ok(ids.includes(doneBy('record-a') as string));
      assert.ok(ids.includes(doneBy('record-b') as string));
      const figures = await settledFigures(cluster.client, cluster.prefix);
      assert.equal(figures.events.processed, 20);
      assert.equal(figures.processors.get('record-a')?.ok, 1);
    } finally {
      await ingest.close();
      await cluster.stop();
    }
  });

  it('records a processing delivery that arrives after succeeded, and does not dispatch it', {
    timeout: 60_000,
  }, async () => {
    const cluster = await WorkerCluster.start(redis, {
      INLET_PROCESSORS: [fixture('record-a.ts'), fixture('on-progress.ts')].join(','),
    });
    try {
      await cluster.startWorkers(2);
      const prediction = samplePrediction('processing');
      const early = await cluster.deliver(prediction);
      await cluster.settle([early]);
      assert.equal((await cluster.runs('on-progress')).length, 1, 'before: dispatched');

      const done = await cluster.deliver({ ...prediction, status: 'succeeded' });
      await cluster.settle([done]);
      const late = await cluster.deliver(prediction);
      await cluster.settle([late]);

      assert.equal((await cluster.runs('on-progress')).length, 1, 'after: not dispatched');
      assert.equal((await cluster.runs('record-a')).length, 1);
      assert.deepEqual((await cluster.job(late)).returnvalue, {
        outcome: 'skipped_after_terminal',
        recordedStatus: 'succeeded',
      });
      const ledger = ledgerKeys.prediction(cluster.prefix, prediction.id);
      assert.equal(await cluster.client.hget(ledger, 'skipped'), '1');
      const figures = await settledFigures(cluster.client, cluster.prefix);
      assert.equal(figures.events.skipped_after_terminal, 1);
      const lines = cluster.workers.flatMap((w) => w.lines);
      const line = lines.find((l) => l.webhookId === late && String(l.msg).includes('terminal'));
      assert.ok(line, 'a log line says why');
      assert.equal(line.predictionId, prediction.id);
    } finally {
      await cluster.stop();
    }
  });

  it('runs intermediate processors once per delivery, and every delivery of a terminal state only once', {
    timeout: 60_000,
  }, async () => {
    const cluster = await WorkerCluster.start(redis, {
      INLET_PROCESSORS: [fixture('record-a.ts'), fixture('on-progress.ts')].join(','),
    });
    try {
      await cluster.startWorkers(2);
      const prediction: Prediction = samplePrediction('starting');
      const ids = [
        await cluster.deliver(prediction),
        await cluster.deliver({ ...prediction, status: 'processing' }),
        await cluster.deliver({ ...prediction, status: 'processing' }),
      ];
      await cluster.settle(ids);
      const terminal = [
        await cluster.deliver({ ...prediction, status: 'failed' }),
        await cluster.deliver({ ...prediction, status: 'failed' }),
      ];
      await cluster.settle(terminal);
      assert.equal((await cluster.runs('on-progress')).length, 3);
      assert.equal((await cluster.runs('record-a')).length, 1);
    } finally {
      await cluster.stop();
    }
  });
});

/** The real ingest, logging nowhere, storing into the cluster's Redis under its prefix. */
async function startQuietIngest(cluster: WorkerCluster, secret: string): Promise<IngestServer> {
  const config = loadConfig({
    ...cluster.env,
    REPLICATE_WEBHOOK_SECRET: secret,
    PORT: '0',
    HOST: '127.0.0.1',
  });
  const { pino } = await import('pino');
  const logger: Logger = pino({ level: 'silent' });
  return startIngest({ config, logger, drainTimeoutMs: 1000 });
}
