import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/core/config.js';
import { startIngest } from '../../src/ingest/server.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { CapturedLogs, startTestIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';

type Ingest = Awaited<ReturnType<typeof startTestIngest>>;

describe('/readyz when Redis answers but refuses stores', () => {
  const secret = makeSecret();
  const prefix = 'ready';
  // A user that may write the readiness probe's key and nothing else: Redis answers every
  // store with NOPERM, as a cluster answers CROSSSLOT or MOVED, while a one-key write succeeds.
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let redis: TestRedis;
  let admin: Redis;
  let ingest: Ingest;

  before(async () => {
    redis = await TestRedis.start();
    admin = redis.client();
    await admin.call('ACL', 'SETUSER', 'inlet', 'on', `>${password}`, `~${prefix}:readyz`, '+@all');
    ingest = await startTestIngest({
      REDIS_URL: `redis://inlet:${password}@127.0.0.1:${redis.port}`,
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_PREFIX: prefix,
    });
  });

  after(async () => {
    await ingest.close();
    admin.disconnect();
    await redis.destroy();
  });

  const deliver = async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const response = await fetch(ingest.webhookUrl, {
      method: 'POST',
      body,
      headers: signedHeaders(secret, body),
    });
    await response.arrayBuffer();
    return response;
  };
  const readyz = async () => {
    const response = await fetch(`${ingest.url}/readyz`);
    return { status: response.status, body: (await response.json()) as { reason?: string } };
  };

  it('goes unready once stores keep failing, and ready again when one succeeds', async () => {
    assert.equal((await readyz()).status, 200, 'ready before any store failed');
    for (let i = 0; i < 3; i++) {
      const response = await deliver();
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '5');
    }
    assert.deepEqual(await readyz(), {
      status: 503,
      body: { status: 'unavailable', reason: 'stores_failing' },
    });

    await admin.call('ACL', 'SETUSER', 'inlet', 'allkeys');
    assert.equal((await deliver()).status, 202);
    assert.equal((await readyz()).status, 200);
  });

  it('never logs the password of REDIS_URL', () => {
    assert.ok(ingest.logs.lines.length > 0);
    assert.ok(!ingest.logs.text.includes(password));
  });
});

describe('/readyz when Redis is out of memory', () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let admin: Redis;
  let ingest: Ingest;

  before(async () => {
    redis = await TestRedis.start();
    admin = redis.client();
    ingest = await startTestIngest({ REDIS_URL: redis.url, REPLICATE_WEBHOOK_SECRET: secret });
  });

  after(async () => {
    await ingest.close();
    admin.disconnect();
    await redis.destroy();
  });

  it('answers 503 while Redis refuses writes under noeviction, and recovers', async () => {
    await admin.config('SET', 'maxmemory', '1');
    const unready = await fetch(`${ingest.url}/readyz`);
    assert.equal(unready.status, 503);
    assert.deepEqual(await unready.json(), {
      status: 'unavailable',
      reason: 'redis_refuses_writes',
    });
    const body = JSON.stringify(samplePrediction('succeeded'));
    const refused = await fetch(ingest.webhookUrl, {
      method: 'POST',
      body,
      headers: signedHeaders(secret, body),
    });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '5');

    await admin.config('SET', 'maxmemory', '0');
    assert.equal((await fetch(`${ingest.url}/readyz`)).status, 200);
    const retry = await fetch(ingest.webhookUrl, {
      method: 'POST',
      body,
      headers: signedHeaders(secret, body),
    });
    assert.equal(retry.status, 202);
  });
});

describe('an ingest whose Redis connection is slow to open', () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let proxy: Server;
  const sockets: Socket[] = [];

  before(async () => {
    redis = await TestRedis.start();
    // A TCP proxy that holds every new connection for 500 ms before it reaches Redis, as a
    // cold or distant Redis does: the ingest must not answer deliveries before it is connected.
    proxy = createServer((client) => {
      client.pause();
      sockets.push(client);
      setTimeout(() => {
        const upstream = connect(redis.port, '127.0.0.1');
        sockets.push(upstream);
        client.pipe(upstream).pipe(client);
        client.resume();
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      }, 500);
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    proxy.close();
    await redis.destroy();
  });

  it('listens only once Redis is ready: its first delivery is stored', async () => {
    const { port } = proxy.address() as { port: number };
    const ingest = await startIngest({
      config: loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: `redis://127.0.0.1:${port}`,
        REPLICATE_WEBHOOK_SECRET: secret,
      }),
      logger: new CapturedLogs().logger,
      drainTimeoutMs: 1000,
    });
    try {
      const body = JSON.stringify(samplePrediction('succeeded'));
      const answer = await fetch(`${ingest.url}/webhooks/replicate`, {
        method: 'POST',
        body,
        headers: signedHeaders(secret, body),
      });
      assert.equal(answer.status, 202);
    } finally {
      await ingest.close();
    }
  });
});
