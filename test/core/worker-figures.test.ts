import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/core/redis.js';
import {
  FigureTally,
  figureKeys,
  readWorkerFigures,
  recordProcessorRun,
  recordWorkerEvent,
} from '../../src/core/worker-figures.js';
import { TestRedis } from '../support/redis-server.js';

describe('FigureTally', () => {
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

  /** A worker's connection, as startWorker makes it: it waits for Redis through an outage. */
  function workerConnection(): Redis {
    return createRedis(redis.url, { role: 'patient', name: 'test:figures' });
  }

  it('adds figures up in memory and writes them in one go, floats and all', async () => {
    const connection = workerConnection();
    const tally = new FigureTally(connection, 60_000);
    try {
      recordProcessorRun(tally, 'a', 'save', true, 0.002);
      recordProcessorRun(tally, 'a', 'save', true, 0.5);
      recordProcessorRun(tally, 'a', 'save', false, 3);
      recordWorkerEvent(tally, 'a', 'processed');
      recordWorkerEvent(tally, 'a', 'processed');
      assert.deepEqual(await client.keys('a:figures:*'), [], 'nothing written before a flush');
      await tally.flush();
      const figures = await readWorkerFigures(client, 'a');
      assert.equal(figures.events.processed, 2);
      const save = figures.processors.get('save');
      assert.equal(save?.ok, 2);
      assert.equal(save?.error, 1);
      assert.ok(Math.abs((save?.sum ?? 0) - 3.502) < 1e-9, `sum ${save?.sum}`);
      assert.equal(save?.buckets[0], 1, '2 ms is in the 5 ms bucket');
    } finally {
      await tally.close();
      connection.disconnect();
    }
  });

  it('keeps what Redis refused and writes it with the next flush, counting nothing twice', async () => {
    const connection = workerConnection();
    const tally = new FigureTally(connection, 60_000);
    const keys = figureKeys('b');
    try {
      // A key of the wrong type makes the run counts fail; the events still go through.
      await client.set(keys.runs, 'not a hash');
      recordProcessorRun(tally, 'b', 'save', true, 0.01);
      recordWorkerEvent(tally, 'b', 'retried');
      await tally.flush();
      assert.equal((await readWorkerFigures(client, 'b')).events.retried, 1);
      await client.del(keys.runs);
      recordWorkerEvent(tally, 'b', 'retried');
      await tally.flush();
      const figures = await readWorkerFigures(client, 'b');
      assert.equal(figures.processors.get('save')?.ok, 1);
      assert.equal(figures.events.retried, 2);
    } finally {
      await tally.close();
      connection.disconnect();
    }
  });

  it('writes on close what was added while Redis was down', async () => {
    const connection = workerConnection();
    connection.on('error', () => undefined);
    const tally = new FigureTally(connection, 60_000);
    try {
      await redis.stop();
      recordWorkerEvent(tally, 'c', 'dead_lettered');
      const closing = tally.close(20_000);
      await redis.start();
      await closing;
      assert.equal((await readWorkerFigures(client, 'c')).events.dead_lettered, 1);
    } finally {
      connection.disconnect();
    }
  });
});
