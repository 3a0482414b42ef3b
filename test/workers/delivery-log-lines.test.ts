import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { CapturedLogs, startReadyIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/** The log lines the README promises: one worker line per delivery, retries and refusals. */
describe('delivery log lines', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let worker: InletWorker;
  const ingestLogs = new CapturedLogs();
  const workerLogs = new CapturedLogs();
  const secret = makeSecret();
  let failures = 1;

  before(async () => {
    redis = await TestRedis.start();
    const config = loadConfig({
      REDIS_URL: redis.url,
      INLET_PREFIX: 'log-lines',
      REPLICATE_WEBHOOK_SECRET: secret,
      PORT: '0',
      HOST: '127.0.0.1',
      INLET_ATTEMPTS: '3',
      INLET_BACKOFF_MS: '40',
    });
    ingest = await startReadyIngest({ config, logger: ingestLogs.logger, drainTimeoutMs: 1000 });
    worker = await startWorker({
      config,
      logger: workerLogs.logger,
      processors: [
        {
          name: 'flaky',
          statuses: ['succeeded'],
          handle() {
            if (failures-- > 0) throw new Error('bucket does not exist');
          },
        },
      ],
    });
  });

  after(async () => {
    await worker?.close();
    await ingest?.close();
    await redis?.destroy();
  });

  const post = (body: string, headers: Record<string, string>) =>
    fetch(`${ingest.url}/webhooks/replicate`, { method: 'POST', headers, body });

  test('a delivery no processor wants still ends in one worker line at info', async () => {
    const body = JSON.stringify(samplePrediction('processing'));
    const headers = signedHeaders(secret, body);
    assert.equal((await post(body, headers)).status, 202);
    const line = await waitFor('the worker line', () =>
      workerLogs.lines.find((l) => l.webhookId === headers['webhook-id'] && l.level === 30),
    );
    assert.equal(line.msg, 'delivery processed: no processor wants this status');
  });

  test('failure and retry lines carry the attempt, the maximum and the delay', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const headers = signedHeaders(secret, body);
    assert.equal((await post(body, headers)).status, 202);
    const mine = () => workerLogs.lines.filter((l) => l.webhookId === headers['webhook-id']);
    await waitFor('delivery processed', () => mine().find((l) => l.msg === 'delivery processed'));
    const failed = mine().find((l) => l.msg === 'processor failed');
    assert.equal(failed?.attempt, 1);
    const retry = mine().find((l) => String(l.msg).startsWith('delivery failed'));
    assert.equal(retry?.level, 40);
    assert.equal(retry?.attempt, 1);
    assert.equal(retry?.maxAttempts, 3);
    assert.deepEqual(retry?.retryInMs, [20, 40]);
    assert.match(String(retry?.msg), /attempt 1 of 3\); retrying in 20-40 ms/);
  });

  test('a refused signature is a warning; every refusal is logged', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const headers = signedHeaders(makeSecret(), body);
      ids.push(headers['webhook-id']);
      assert.equal((await post(body, headers)).status, 401);
    }
    const lines = await waitFor('three refusal lines', () => {
      const found = ingestLogs.lines.filter((l) => ids.includes(String(l.webhookId)));
      return found.length === 3 ? found : undefined;
    });
    // How many more are warnings depends on the clock; WarnLimiter's own test covers that.
    assert.equal(lines[0]?.level, 40);
    assert.ok(lines.every((l) => l.httpStatus === 401));
  });
});
