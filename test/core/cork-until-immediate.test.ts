import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ioredis } from '../../src/core/commonjs-packages.js';
import { corkUntilImmediate } from '../../src/core/redis.js';
import { countSocketWrites, socketReads, TestRedis } from '../support/redis-server.js';

let redis: TestRedis;
let client: Redis;
let observer: Redis;

before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
  observer = redis.client();
  await Promise.all([client.ping(), observer.ping()]);
});
after(async () => {
  client.disconnect();
  observer.disconnect();
  await redis.destroy();
});

describe('corkUntilImmediate', () => {
  it('sends the commands of one turn of the event loop in one write, each with its own reply', async () => {
    const readsBefore = await socketReads(observer);
    const writes = countSocketWrites(client);
    const replies: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) {
      corkUntilImmediate(client); // once per store, as the ingest calls it
      replies.push(client.set(`cork:${i}`, String(i)), client.incr('cork:count'));
    }
    const answers = await Promise.all(replies);
    writes.stop();
    const readsAfter = await socketReads(observer);

    assert.equal(answers.filter((answer) => answer === 'OK').length, 20);
    assert.deepEqual(
      answers.filter((answer) => typeof answer === 'number'),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    // One write for the 40 commands, so one read of Redis's, and one for the second INFO.
    assert.equal(writes.count(), 1);
    assert.equal(readsAfter - readsBefore, 2);
  });

  it('lets the socket go at the next check phase: a later command is not held', async () => {
    corkUntilImmediate(client);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(client.stream.writableCorked, 0);
    assert.equal(await client.ping(), 'PONG');
  });

  it('does nothing on a connection that is not ready, and holds it once it is', async () => {
    const idle = new ioredis.Redis(redis.url, { lazyConnect: true });
    try {
      assert.equal(idle.status, 'wait');
      corkUntilImmediate(idle); // no socket yet: must not throw, nor count as held
      await idle.connect();
      corkUntilImmediate(idle);
      assert.equal(idle.stream.writableCorked, 1);
      assert.equal(await idle.ping(), 'PONG');
    } finally {
      idle.disconnect();
    }
  });
});
