import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createLogger } from '../../src/core/logger.js';
import { createIngestListener, WEBHOOK_PATH } from '../../src/ingest/app.js';
import type { DeliveryEnqueuer } from '../../src/ingest/enqueue-delivery.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../src/ingest/json-depth.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { startTestIngest } from '../support/ingest.js';
import { scrape } from '../support/prometheus.js';
import { TestRedis } from '../support/redis-server.js';

type Ingest = Awaited<ReturnType<typeof startTestIngest>>;

/** A prediction whose `output` is arrays nested so that the whole body is `depth` deep. */
function nestedPrediction(depth: number): string {
  const inner = depth - 1;
  const output = `${'['.repeat(inner)}1${']'.repeat(inner)}`;
  const { output: _, ...rest } = samplePrediction('succeeded');
  return `${JSON.stringify(rest).slice(0, -1)},"output":${output}}`;
}

describe('nestsDeeperThan', () => {
  it('counts arrays and objects, skipping string contents and escapes', () => {
    assert.equal(nestsDeeperThan(Buffer.from('{"a":[{"b":[1]}]}'), 4), false);
    assert.equal(nestsDeeperThan(Buffer.from('{"a":[{"b":[1]}]}'), 3), true);
    assert.equal(nestsDeeperThan(Buffer.from('{"a":"[[[[[[\\"[[[["}'), 1), false);
    assert.equal(nestsDeeperThan(Buffer.from('"\\\\"[[['), 2), true);
  });
});

describe('hostile bodies at the ingest', () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let ingest: Ingest;

  before(async () => {
    redis = await TestRedis.start();
    ingest = await startTestIngest({ REDIS_URL: redis.url, REPLICATE_WEBHOOK_SECRET: secret });
  });

  after(async () => {
    await ingest.close();
    await redis.destroy();
  });

  const post = (body: string, headers: Record<string, string>) =>
    fetch(ingest.webhookUrl, { method: 'POST', body, headers });

  it('logs the prediction id a forged body claims without parsing it', async () => {
    // Not JSON at all past its first bytes: only a scan of the raw head can find the id.
    const body = `{"id":"claimedid123","status":"succeeded","output":[${'['.repeat(50_000)}`;
    const forged = signedHeaders(makeSecret(), body);
    assert.equal((await post(body, forged)).status, 401);
    const line = ingest.logs.lines.find((l) => l.webhookId === forged['webhook-id']);
    assert.equal(line?.outcome, 'invalid_signature');
    assert.equal(line?.predictionId, 'claimedid123');
    assert.equal(line?.unverified, true);
  });

  it(`accepts a signed delivery nested ${MAX_JSON_DEPTH} deep`, async () => {
    const body = nestedPrediction(MAX_JSON_DEPTH);
    assert.equal((await post(body, signedHeaders(secret, body))).status, 202);
  });

  it('answers a deeper signed delivery 400 once and for all, never 503', async () => {
    const before = await scrape(ingest.url);
    for (const depth of [MAX_JSON_DEPTH + 1, 5_000, 100_000]) {
      const body = nestedPrediction(depth);
      const response = await post(body, signedHeaders(secret, body));
      assert.equal(response.status, 400, `depth ${depth}`);
      const json = (await response.json()) as { error: { code: string } };
      assert.equal(json.error.code, 'too_deeply_nested');
    }
    const now = await scrape(ingest.url);
    const count = (s: typeof now, outcome: string) =>
      s.get('inlet_deliveries_total', { outcome }) ?? Number.NaN;
    assert.equal(count(now, 'unavailable') - count(before, 'unavailable'), 0);
    assert.equal(count(now, 'malformed') - count(before, 'malformed'), 3);
    assert.equal((await fetch(`${ingest.url}/readyz`)).status, 200, 'still ready');
  });

  it('answers methods the router has no route for with JSON 405 and Allow, or 404', async () => {
    for (const method of ['PROPFIND', 'PURGE', 'PUT', 'DELETE']) {
      const response = await fetch(ingest.webhookUrl, { method });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get('allow'), 'POST', method);
      const json = (await response.json()) as { error: { code: string } };
      assert.equal(json.error.code, 'method_not_allowed');
    }
    const unknownPath = await fetch(`${ingest.url}/nope`, { method: 'PROPFIND' });
    assert.equal(unknownPath.status, 404);
    assert.equal(
      ((await unknownPath.json()) as { error: { code: string } }).error.code,
      'not_found',
    );
  });
});

describe('a store that fails for a reason other than Redis', () => {
  let server: Server;
  let url: string;

  before(async () => {
    const failing = {
      enqueueDelivery: () => Promise.reject(new Error('BullMQ could not encode the job')),
    } as unknown as DeliveryEnqueuer;
    const listener = createIngestListener({
      enqueuer: failing,
      logger: createLogger({ level: 'silent' }),
      redis: {} as Redis,
      prefix: 'unused',
      keys: [],
      skipVerify: true,
      toleranceSeconds: 300,
      maxBodyBytes: 1024 * 1024,
    });
    server = createServer(listener).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${WEBHOOK_PATH}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('is a 500, not a 503 that would count it as unavailability', async () => {
    const response = await fetch(url, {
      method: 'POST',
      body: JSON.stringify(samplePrediction('succeeded')),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(response.status, 500);
    assert.equal(response.headers.get('retry-after'), null);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'internal');
  });
});
