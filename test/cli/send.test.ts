import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { planDeliveries } from '../../src/cli/send-plan.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { PREDICTION_STATUSES } from '../../src/core/prediction.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { jsonLines, runCli } from '../support/cli.js';
import { makeSecret } from '../support/deliveries.js';
import { startReadyIngest } from '../support/ingest.js';
import { freePort, TestRedis } from '../support/redis-server.js';

describe('inlet send plan', () => {
  test('"all" covers every status, one terminal per prediction, repeats share the webhook-id', () => {
    const sequences = planDeliveries({
      statuses: ['all'],
      count: 4,
      duplicates: 1,
      url: 'http://127.0.0.1:3000/webhooks/replicate',
    });
    assert.equal(sequences.length, 4);
    const statuses = new Set(sequences.flat().map((d) => d.status));
    assert.deepEqual([...statuses].sort(), [...PREDICTION_STATUSES].sort());
    for (const sequence of sequences) {
      assert.equal(sequence.length, 6);
      assert.equal(new Set(sequence.map((d) => d.predictionId)).size, 1);
      assert.equal(sequence[0]?.webhookId, sequence[1]?.webhookId);
      assert.equal(sequence[0]?.body, sequence[1]?.body);
      assert.notEqual(sequence[0]?.webhookId, sequence[2]?.webhookId);
      assert.deepEqual(
        sequence
          .filter((d) => d.repeat === 0)
          .map((d) => d.status)
          .slice(0, 2),
        ['starting', 'processing'],
      );
    }
  });

  test('bodies are whole prediction objects', () => {
    const delivery = planDeliveries({
      statuses: ['succeeded'],
      count: 1,
      predictionIds: ['p1'],
      duplicates: 0,
      url: 'http://x/webhooks/replicate',
    })[0]?.[0];
    const prediction = JSON.parse(delivery?.body ?? '');
    for (const field of [
      'id',
      'model',
      'version',
      'input',
      'output',
      'logs',
      'error',
      'status',
      'created_at',
      'started_at',
      'completed_at',
      'urls',
      'metrics',
      'data_removed',
      'webhook',
      'webhook_events_filter',
    ]) {
      assert.ok(field in prediction, `missing ${field}`);
    }
    assert.equal(prediction.id, 'p1');
    assert.match(prediction.output[0], /^https:\/\/replicate\.delivery\//);
  });
});

describe('inlet send against a real ingest', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let url: string;
  const secret = makeSecret();

  before(async () => {
    redis = await TestRedis.start();
    const config = loadConfig({
      REDIS_URL: redis.url,
      REPLICATE_WEBHOOK_SECRET: secret,
      PORT: '0',
      HOST: '127.0.0.1',
      INLET_PREFIX: 'send-test',
    });
    ingest = await startReadyIngest({
      config,
      logger: createLogger({ level: 'silent' }),
      drainTimeoutMs: 1000,
    });
    url = `${ingest.url}/webhooks/replicate`;
  });

  after(async () => {
    await ingest?.close();
    await redis?.destroy();
  });

  test('every status, with duplicates: accepted once, repeats answered duplicate, exit 0', async () => {
    const result = await runCli(
      ['send', '--url', url, '--count', '4', '--status', 'all', '--duplicate'],
      { env: { REPLICATE_WEBHOOK_SECRET: secret } },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /sent 24 deliveries for 4 predictions .*: 12 accepted, 12 duplicate, 0 rejected, 0 failed/,
    );
    const jobs = await ingest.queue.getJobs(['waiting', 'wait', 'prioritized']);
    assert.equal(jobs.length, 12);
    const stored = new Set(jobs.map((job) => job.data.prediction.status));
    assert.deepEqual([...stored].sort(), [...PREDICTION_STATUSES].sort());
  });

  test('--json prints one line per delivery; --prediction names the prediction', async () => {
    const result = await runCli(
      [
        'send',
        '--url',
        url,
        '--status',
        'succeeded',
        '--prediction',
        'abc123',
        '--duplicate',
        '2',
        '--json',
      ],
      { env: { REPLICATE_WEBHOOK_SECRET: secret } },
    );
    assert.equal(result.code, 0, result.stderr);
    const lines = jsonLines(result.stdout);
    assert.deepEqual(
      lines.map((l) => l.outcome),
      ['accepted', 'duplicate', 'duplicate'],
    );
    assert.ok(
      lines.every((l) => l.predictionId === 'abc123' && l.webhookId === lines[0]?.webhookId),
    );
    assert.match(result.stderr, /1 accepted, 2 duplicate/);
  });

  test('a wrong secret is rejected with 401: the summary says why and the exit is 1', async () => {
    const result = await runCli(['send', '--url', url, '--count', '2'], {
      env: { REPLICATE_WEBHOOK_SECRET: makeSecret() },
    });
    assert.equal(result.code, 1);
    assert.match(result.stdout, /0 accepted, 0 duplicate, 6 rejected/);
    assert.match(result.stdout, /6 × 401 invalid_signature: no signature matches/);
  });

  test('nothing listening: failed, with a hint, exit 1', async () => {
    const port = await freePort();
    const target = `http://127.0.0.1:${port}/webhooks/replicate`;
    const result = await runCli(['send', '--url', target, '--unsigned']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /3 failed/);
    assert.match(result.stdout, /ECONNREFUSED.*inlet dev/);
  });
});

describe('inlet send against an independent verifier', () => {
  let server: Server;
  let base: string;
  const secret = makeSecret();
  const verified: string[] = [];

  before(async () => {
    // Verifies with the reference Standard Webhooks library, not inlet's own module.
    server = createServer(async (req, res) => {
      const body = await readAll(req);
      if (req.url === '/moved') {
        res.writeHead(301, { location: '/webhooks/replicate' }).end();
        return;
      }
      try {
        new Webhook(secret).verify(body, req.headers as Record<string, string>);
        verified.push(req.headers['webhook-id'] as string);
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"accepted"}');
      } catch {
        res.writeHead(401).end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => server.close());

  test('signatures verify with the standardwebhooks library', async () => {
    const result = await runCli([
      'send',
      '--url',
      `${base}/webhooks/replicate`,
      '--secret',
      secret,
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(verified.length, 3);
  });

  test('a redirect is a rejection, as Replicate does not follow it', async () => {
    const result = await runCli([
      'send',
      '--url',
      `${base}/moved`,
      '--secret',
      secret,
      '--status',
      'succeeded',
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /301 redirect to \/webhooks\/replicate: Replicate does not follow redirects/,
    );
  });
});

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
