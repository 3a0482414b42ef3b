import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { bullmq } from '../../src/core/commonjs-packages.js';
import type { DeliveryJob } from '../../src/core/job.js';
import { makeSecret, samplePrediction, signedHeaders, webhookId } from '../support/deliveries.js';
import { startTestIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

type Ingest = Awaited<ReturnType<typeof startTestIngest>>;
const MiB = 1024 * 1024;
/** Far above the ingest's 1 s Redis deadline: only a hung ingest reaches it. */
const ANSWER_DEADLINE_MS = 20_000;

describe('POST /webhooks/replicate', () => {
  const secret = makeSecret();
  const prefix = 'ingest-test';
  let redis: TestRedis;
  let client: Redis;
  let ingest: Ingest;

  before(async () => {
    redis = await TestRedis.start();
    client = redis.client();
    ingest = await startTestIngest({
      REDIS_URL: redis.url,
      REPLICATE_WEBHOOK_SECRET: `${makeSecret()} ${secret}`,
      INLET_PREFIX: prefix,
      INLET_MAX_BODY_BYTES: String(5 * MiB),
    });
  });

  after(async () => {
    await ingest.close();
    client.disconnect();
    await redis.destroy();
  });

  /** Posts a prediction signed with the reference library; `headers` override the signed ones. */
  function post(body: string, headers: Record<string, string> = {}, query = '') {
    return fetch(`${ingest.webhookUrl}${query}`, {
      method: 'POST',
      body,
      headers: { ...signedHeaders(secret, body), ...headers },
    });
  }

  async function storedJob(id: string): Promise<DeliveryJob | undefined> {
    const job = await ingest.queue.getJob(id);
    return job?.data;
  }

  it('answers 202 only with the delivery stored, holding the job contract and no signature', async () => {
    const prediction = samplePrediction('succeeded');
    const body = JSON.stringify(prediction);
    const headers = signedHeaders(secret, body);
    const before = Date.now();
    const response = await fetch(`${ingest.webhookUrl}?customId=123&tag=a&tag=b`, {
      method: 'POST',
      body,
      headers: { ...headers, authorization: 'Bearer should-not-be-kept' },
    });
    assert.equal(response.status, 202);
    assert.deepEqual(await response.json(), { status: 'accepted', id: headers['webhook-id'] });

    const job = await storedJob(headers['webhook-id']);
    assert.ok(job, 'the job is in Redis when the 202 arrives');
    assert.deepEqual(job.prediction, prediction);
    assert.equal(job.webhookId, headers['webhook-id']);
    assert.equal(job.timestamp, Number(headers['webhook-timestamp']));
    assert.ok(job.receivedAt >= before && job.receivedAt <= Date.now());
    assert.deepEqual(job.query, { customId: '123', tag: ['a', 'b'] });
    const raw = JSON.stringify(
      await client.hgetall(`${prefix}:deliveries:${headers['webhook-id']}`),
    );
    assert.ok(!raw.includes(headers['webhook-signature'].slice(3, 20)), 'no signature in the job');
    assert.ok(!raw.includes('should-not-be-kept'), 'no authorization header in the job');
    assert.ok(!raw.includes(secret.slice(6, 20)), 'no secret in the job');
  });

  it('answers 200 duplicate for a webhook-id already accepted, and stores one job', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const headers = signedHeaders(secret, body);
    assert.equal((await post(body, headers)).status, 202);
    const repeat = await post(body, headers);
    assert.equal(repeat.status, 200);
    assert.deepEqual(await repeat.json(), { status: 'duplicate', id: headers['webhook-id'] });
  });

  it('answers alike on the direct path and through Koa (the route spelled with a trailing slash)', async () => {
    const seen = [];
    for (const path of ['', '/']) {
      const body = JSON.stringify(samplePrediction('succeeded'));
      const accepted = await post(body, {}, `${path}?tag=a&tag=b&__proto__=x&plus=a+b`);
      const answer = (await accepted.json()) as { status: string; id: string };
      const stale = await post(body, { 'webhook-timestamp': '1' }, path);
      const notJson = await post(body, { 'content-type': 'text/plain' }, path);
      seen.push({
        accepted: [accepted.status, answer.status, accepted.headers.get('content-type')],
        query: (await storedJob(answer.id))?.query,
        stale: [stale.status, await stale.json()],
        notJson: [notJson.status, await notJson.json()],
      });
    }
    const [direct, koa] = seen;
    assert.deepEqual(direct, koa);
    assert.deepEqual(direct?.accepted, [202, 'accepted', 'application/json; charset=utf-8']);
    assert.deepEqual(direct?.query, { tag: ['a', 'b'], ['__proto__']: 'x', plus: 'a b' });

    // A fragment (which fetch never sends, but a raw client may) is no part of the query.
    const body = JSON.stringify(samplePrediction('succeeded'));
    const { port } = new URL(ingest.url);
    const answer = await new Promise<{ id: string }>((resolve, reject) => {
      const path = '/webhooks/replicate?a=1#frag';
      const headers = signedHeaders(secret, body);
      request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve(JSON.parse(text)));
      })
        .on('error', reject)
        .end(body);
    });
    assert.deepEqual((await storedJob(answer.id))?.query, { a: '1' });
  });

  it('stores fifty identical concurrent deliveries once: one accepted, forty-nine duplicate', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const headers = signedHeaders(secret, body);
    const waitingBefore = await ingest.queue.getWaitingCount();
    const answers = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const response = await post(body, headers);
        const json = (await response.json()) as { status: string };
        // Every 2xx, whichever it is, must find the job already stored.
        assert.ok(await storedJob(headers['webhook-id']), 'answered before the job was stored');
        return `${response.status} ${json.status}`;
      }),
    );
    assert.equal(answers.filter((a) => a === '202 accepted').length, 1);
    assert.equal(answers.filter((a) => a === '200 duplicate').length, 49);
    assert.equal((await ingest.queue.getWaitingCount()) - waitingBefore, 1);
  });

  it('still answers duplicate after the job was removed, within the de-duplication window', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const headers = signedHeaders(secret, body);
    assert.equal((await post(body, headers)).status, 202);
    const job = await ingest.queue.getJob(headers['webhook-id']);
    await job?.remove();
    assert.equal(await ingest.queue.getJob(headers['webhook-id']), undefined);
    const repeat = await post(body, headers);
    assert.equal(repeat.status, 200);
    assert.equal(((await repeat.json()) as { status: string }).status, 'duplicate');
    const ttl = await client.ttl(`${prefix}:seen:${headers['webhook-id']}`);
    assert.ok(ttl > 86_400, `the window is at least 24 h (ttl ${ttl})`);
  });

  it('never turns a failed store into a false duplicate: the retry is accepted', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const headers = signedHeaders(secret, body);
    // Break BullMQ's job-id counter so that its add fails inside our store script.
    const idKey = `${prefix}:deliveries:id`;
    const counter = await client.get(idKey);
    await client.set(idKey, 'not-a-number');
    const failed = await post(body, headers);
    assert.equal(failed.status, 503);
    assert.equal(failed.headers.get('retry-after'), '5');
    assert.equal(await storedJob(headers['webhook-id']), undefined);
    await client.set(idKey, counter ?? '0');
    const retry = await post(body, headers);
    assert.equal(retry.status, 202);
    assert.ok(await storedJob(headers['webhook-id']));
  });

  it('answers 400 for malformed deliveries, with a JSON error code', async () => {
    const good = JSON.stringify(samplePrediction('processing'));
    const cases: Array<[string, Record<string, string>, string]> = [
      [good, { 'webhook-signature': '' }, 'missing_headers'],
      [good, { 'webhook-timestamp': 'yesterday' }, 'invalid_timestamp'],
      ['{"id": "abc", "status": ', {}, 'invalid_json'],
      ['[1, 2, 3]', {}, 'invalid_prediction'],
      ['{"status": "succeeded"}', {}, 'invalid_prediction'],
      ['{"id": "abc", "status": "done"}', {}, 'invalid_prediction'],
    ];
    for (const [body, headers, code] of cases) {
      const response = await post(body, headers);
      assert.equal(response.status, 400, code);
      const json = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(json.error.code, code);
      assert.ok(json.error.message.length > 0);
    }
    const missing = await fetch(ingest.webhookUrl, {
      method: 'POST',
      body: good,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(missing.status, 400);
  });

  it('answers 400 for a webhook-id it cannot key a job by', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const response = await post(body, signedHeaders(secret, body, 'msg:with:colons'));
    assert.equal(response.status, 400);
    assert.equal(
      ((await response.json()) as { error: { code: string } }).error.code,
      'invalid_webhook_id',
    );
  });

  it('accepts a numeric webhook-id, which BullMQ would refuse as a job id', async () => {
    // `-50` came from the fuzzer: BullMQ refuses whatever parseInt reads back unchanged.
    for (const id of ['1234567890', '-50', '0', '-0', '007', '+5', '1e3']) {
      const body = JSON.stringify(samplePrediction('succeeded'));
      const headers = signedHeaders(secret, body, id);
      assert.equal((await post(body, headers)).status, 202, id);
      assert.equal((await post(body, headers)).status, 200, id);
    }
  });

  it('answers 401 for a bad signature and for a timestamp outside the tolerance', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const wrongSecret = await post(body, signedHeaders(makeSecret(), body));
    assert.equal(wrongSecret.status, 401);
    assert.equal(
      ((await wrongSecret.json()) as { error: { code: string } }).error.code,
      'invalid_signature',
    );

    const signed = signedHeaders(secret, body);
    const tampered = await post(body.replace('succeeded', 'failed'), signed);
    assert.equal(tampered.status, 401);

    const stale = await post(
      body,
      signedHeaders(secret, body, webhookId(), new Date(Date.now() - 600_000)),
    );
    assert.equal(stale.status, 401);
    assert.equal(
      ((await stale.json()) as { error: { code: string } }).error.code,
      'timestamp_too_old',
    );
    const future = await post(
      body,
      signedHeaders(secret, body, webhookId(), new Date(Date.now() + 600_000)),
    );
    assert.equal(future.status, 401);
  });

  it('verifies the raw bytes: whitespace and key order of the JSON are kept as sent', async () => {
    const body = `{\n  "status": "succeeded",   "id": "raw-bytes",\n  "output": ["é"]\n}`;
    assert.equal((await post(body)).status, 202);
  });

  it('answers 413 for a body over the limit, declared or streamed', async () => {
    const big = JSON.stringify({ ...samplePrediction('succeeded'), logs: 'x'.repeat(5 * MiB) });
    const declared = await post(big);
    assert.equal(declared.status, 413);
    assert.equal(
      ((await declared.json()) as { error: { code: string } }).error.code,
      'payload_too_large',
    );

    // Chunked, with no Content-Length: the limit holds while reading.
    const streamed = await rawPost(ingest.webhookUrl, signedHeaders(secret, big), [
      big.slice(0, 1000),
      big.slice(1000),
    ]);
    assert.equal(streamed.status, 413);
  });

  it('accepts a body just under the limit (large outputs are real)', async () => {
    const body = JSON.stringify({ ...samplePrediction('succeeded'), logs: 'x'.repeat(4 * MiB) });
    assert.equal((await post(body)).status, 202);
  });

  it('answers 415 for a body that is not declared JSON', async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const response = await post(body, { 'content-type': 'text/plain' });
    assert.equal(response.status, 415);
    assert.equal(
      ((await response.json()) as { error: { code: string } }).error.code,
      'unsupported_media_type',
    );
    const charset = await post(body, { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(charset.status, 202);
  });

  it('answers JSON 404 and 405, health and readiness', async () => {
    const missing = await fetch(`${ingest.url}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
    const wrongMethod = await fetch(ingest.webhookUrl);
    assert.equal(wrongMethod.status, 405);
    assert.equal((await fetch(`${ingest.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${ingest.url}/readyz`)).status, 200);
  });

  it('logs one JSON line per delivery with ids, outcome and latency, never a signature', async () => {
    const prediction = samplePrediction('succeeded');
    const body = JSON.stringify(prediction);
    const headers = signedHeaders(secret, body);
    await post(body, { ...headers, authorization: 'Bearer top-secret-token' });
    const lines = ingest.logs.lines.filter((line) => line.webhookId === headers['webhook-id']);
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.predictionId, prediction.id);
    assert.equal(line?.predictionStatus, 'succeeded');
    assert.equal(line?.outcome, 'accepted');
    assert.equal(typeof line?.ms, 'number');
    assert.ok(!ingest.logs.text.includes(headers['webhook-signature'].slice(3)));
    assert.ok(!ingest.logs.text.includes('top-secret-token'));
  });

  it('logs a rejected delivery with its webhook id and the prediction id its body claims', async () => {
    const prediction = samplePrediction('succeeded');
    const body = JSON.stringify(prediction);
    const forged = signedHeaders(makeSecret(), body);
    assert.equal((await post(body, forged)).status, 401);
    const line = ingest.logs.lines.find((l) => l.webhookId === forged['webhook-id']);
    assert.equal(line?.outcome, 'invalid_signature');
    assert.equal(line?.predictionId, prediction.id);
    assert.equal(line?.unverified, true);
  });
});

describe('when Redis goes away', () => {
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

  /** Posts a signed delivery; a hung ingest fails the test at the fetch's generous deadline. */
  async function send(id: string) {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const response = await fetch(ingest.webhookUrl, {
      method: 'POST',
      body,
      headers: signedHeaders(secret, body, id),
      signal: AbortSignal.timeout(ANSWER_DEADLINE_MS),
    });
    return { status: response.status, retryAfter: response.headers.get('retry-after') };
  }

  it('answers only 503 while it is down, no 2xx for anything not stored, and 202 once it is back', async () => {
    const answers = new Map<string, number>();
    const count = (status: number) => [...answers.values()].filter((s) => s === status).length;
    let stop = false;
    const stream = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `msg_stream_${i}`;
        const answer = await send(id);
        answers.set(id, answer.status);
        assert.ok([202, 503].includes(answer.status), `unexpected ${answer.status}`);
        if (answer.status === 503) assert.equal(answer.retryAfter, '5');
      }
    })();
    await waitFor('a first 202', () => count(202) > 0);
    await redis.stop();
    await waitFor('503s while Redis is down', () => count(503) >= 2);
    assert.equal((await fetch(`${ingest.url}/readyz`)).status, 503);
    await redis.start();
    // The ingest reconnects by itself, and the stream goes on being accepted.
    const acceptedBefore = count(202);
    await waitFor('202s after Redis came back', () => count(202) >= acceptedBefore + 3);
    stop = true;
    await stream;

    const statuses = [...answers.values()];
    assert.ok(statuses.includes(503), 'some deliveries met the outage');
    assert.ok(statuses.includes(202), 'some deliveries were accepted');
    assert.equal(statuses.at(-1), 202, 'accepted again after Redis came back');
    // Every 202 is in Redis after the crash and restart; no 503 left a job behind it claimed.
    // Read through a connection of the test's own that waits for Redis: the ingest's fail-fast
    // connections each reconnect in their own time, and one not yet back refuses at once.
    const queue = new bullmq.Queue(ingest.queue.name, {
      connection: { url: redis.url },
      prefix: ingest.queue.opts.prefix,
    });
    try {
      for (const [id, status] of answers) {
        const stored = (await queue.getJob(id)) !== undefined;
        if (status === 202) assert.ok(stored, `${id} was answered 202 but is not stored`);
      }
    } finally {
      await queue.close();
    }
    assert.equal((await fetch(`${ingest.url}/readyz`)).status, 200);
  });

  it('answers 503 while Redis is slow, long before Redis answers', async () => {
    // Redis is stopped (SIGSTOP): connections stay open and nothing answers, as slow as a server
    // can be without failing. The ingest gives up after its 1 s command timeout
    // (src/core/redis.ts); the fetch's deadline only keeps a hung ingest from hanging the test.
    redis.freeze();
    try {
      const answer = await send(webhookId());
      assert.equal(answer.status, 503);
      assert.equal(answer.retryAfter, '5');
    } finally {
      redis.thaw();
    }
    // And it recovers as soon as Redis answers again.
    await waitFor('a 202 once Redis answers', async () => (await send(webhookId())).status === 202);
  });
});

/** A POST whose body is sent in chunks without a Content-Length (chunked encoding). */
function rawPost(url: string, headers: Record<string, string>, chunks: string[]) {
  return new Promise<{ status: number }>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', (error) => {
      // The server may close the connection after answering 413 mid-upload.
      if (
        (error as NodeJS.ErrnoException).code === 'EPIPE' ||
        (error as NodeJS.ErrnoException).code === 'ECONNRESET'
      )
        return;
      reject(error);
    });
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}
