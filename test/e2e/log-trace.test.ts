import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { defineProcessor } from '../../src/workers/processor.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { waitUntilReady } from '../support/dashboard-stack.js';
import {
  makeSecret,
  randomId,
  samplePrediction,
  signedHeaders,
  webhookId,
} from '../support/deliveries.js';
import { CapturedLogs, startReadyIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/**
 * One webhook id, grepped in the logs of a real ingest and a real worker, shows the delivery's
 * whole path: received, stored, a repeat recognised, a processor failing and retried, the
 * processor's own line, success, done. Every one of those lines also names the prediction.
 */
describe('log trace of one delivery', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let worker: InletWorker;
  const logs = new CapturedLogs();
  const secret = makeSecret();
  let tries = 0;

  before(async () => {
    redis = await TestRedis.start();
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_PREFIX: `trace-${randomBytes(4).toString('hex')}`,
      INLET_ATTEMPTS: '3',
      INLET_BACKOFF_MS: '10',
      LOG_LEVEL: 'debug',
    });
    ingest = await startReadyIngest({ config, logger: logs.logger.child({ service: 'ingest' }) });
    const notify = defineProcessor({
      name: 'notify-team',
      statuses: ['succeeded'],
      async handle(prediction, ctx) {
        tries++;
        if (tries === 1) throw new Error('chat service timed out');
        ctx.log.info({ outputs: (prediction.output as unknown[]).length }, 'team notified');
      },
    });
    worker = await startWorker({
      config,
      logger: logs.logger.child({ service: 'worker' }),
      processors: [notify],
    });
    await waitUntilReady(ingest.url);
  });

  after(async () => {
    await worker?.close();
    await ingest?.close();
    await redis?.destroy();
  });

  it('greps one webhook id through the ingest and the worker', async (t) => {
    const predictionId = randomId();
    const id = webhookId();
    const body = JSON.stringify(samplePrediction('succeeded', predictionId));
    const headers = signedHeaders(secret, body, id);
    const url = `${ingest.url}/webhooks/replicate?customId=42`;
    assert.equal((await fetch(url, { method: 'POST', body, headers })).status, 202);
    assert.equal((await fetch(url, { method: 'POST', body, headers })).status, 200);

    // What `grep <webhook-id>` on the processes' stdout gives.
    const grep = (needle: string) =>
      logs.text
        .split('\n')
        .filter((line) => line.includes(needle))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await waitFor('delivery processed', () => grep(id).some((l) => l.msg === 'delivery processed'));
    const lines = grep(id);
    t.diagnostic(lines.map((l) => `${l.service}: ${l.msg}`).join(' | '));

    for (const line of lines) {
      assert.equal(line.webhookId, id, JSON.stringify(line));
      assert.equal(line.predictionId, predictionId, JSON.stringify(line));
    }
    // …and no line about the prediction lacks the webhook id.
    for (const line of grep(predictionId)) assert.equal(line.webhookId, id, JSON.stringify(line));

    const path: Array<[service: string, pattern: RegExp]> = [
      ['ingest', /^delivery$/],
      ['worker', /processor failed/],
      ['worker', /retry/i],
      ['worker', /^team notified$/],
      ['worker', /delivery processed/],
    ];
    let at = 0;
    for (const [service, pattern] of path) {
      const found = lines.findIndex(
        (line, index) => index >= at && line.service === service && pattern.test(String(line.msg)),
      );
      assert.ok(found >= 0, `no ${service} line matching ${pattern} after line ${at}`);
      at = found + 1;
    }
    const ingestLines = lines.filter((line) => line.service === 'ingest');
    assert.deepEqual(
      ingestLines.map((line) => line.outcome),
      ['accepted', 'duplicate'],
    );
    // The worker's line for the delivery names each processor that ran, with its time.
    const processed = lines.find((line) => line.msg === 'delivery processed') ?? {};
    assert.ok((processed.ran as string[]).includes('notify-team'), JSON.stringify(processed));
    assert.equal(typeof (processed.ms as Record<string, unknown>)['notify-team'], 'number');
    const processorLines = lines.filter((line) => line.msg === 'team notified');
    assert.equal(processorLines[0]?.processor, 'notify-team', "the processor's ctx.log names it");

    assert.ok(!logs.text.includes(secret), 'the signing secret is never logged');
    assert.ok(!logs.text.includes(headers['webhook-signature'] as string), 'nor a signature');
  });
});
