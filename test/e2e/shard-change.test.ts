/**
 * Changing INLET_SHARDS on a running single Redis: 1 → 4 → 2, with deliveries stored under each
 * N and not yet processed. On one Redis the de-duplication marks and the ledger stay under the
 * prefix whatever N is (src/core/shards.ts), so every guarantee holds across the change; the
 * queues of shards dropped by lowering N are drained by workers told to take from them
 * (INLET_WORKER_SHARDS).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeQueues, openShardQueues } from '../../src/core/shard-queues.js';
import { shardOf } from '../../src/core/shards.js';
import { recordingWorker } from '../support/cluster-load.js';
import { makeSecret, postSigned, samplePrediction } from '../support/deliveries.js';
import { startTestIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

describe('changing INLET_SHARDS on one Redis', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.destroy();
  });

  it('keeps de-duplication and once-per-prediction across 1 → 4 → 2 shards', {
    timeout: 60_000,
  }, async () => {
    const secret = makeSecret();
    const base = { REDIS_URL: redis.url, INLET_PREFIX: 'change' };
    const predictions = Array.from({ length: 12 }, () => samplePrediction('succeeded'));
    // Predictions that move off shard 0 when N becomes 4, and stay off 0 and 1 with N = 2 are
    // what the change is about; check the sample has them.
    assert.ok(predictions.some((p) => shardOf(p.id, 4) >= 2));
    const terminalIds = new Map<string, string[]>();
    const send = async (shards: number, again: boolean) => {
      const ingest = await startTestIngest({
        ...base,
        INLET_SHARDS: String(shards),
        REPLICATE_WEBHOOK_SECRET: secret,
      });
      try {
        for (const prediction of predictions) {
          const ids = terminalIds.get(prediction.id) ?? [];
          if (again) {
            // Replicate retrying a delivery acknowledged under the previous N: still a duplicate.
            const retry = await postSigned(ingest.webhookUrl, secret, prediction, ids[0]);
            assert.equal(retry.status, 200, `retry under ${shards} shards`);
          }
          const processing = await postSigned(ingest.webhookUrl, secret, {
            ...prediction,
            status: 'processing',
          });
          const terminal = await postSigned(ingest.webhookUrl, secret, prediction);
          assert.deepEqual([processing.status, terminal.status], [202, 202]);
          terminalIds.set(prediction.id, [...ids, terminal.id]);
        }
      } finally {
        await ingest.close();
      }
    };
    await send(1, false);
    await send(4, true);
    await send(2, true);

    // Workers of the new N (2) take from every shard that holds jobs: 0-3.
    const { worker, runs } = await recordingWorker({
      ...base,
      INLET_SHARDS: '2',
      INLET_WORKER_SHARDS: '0-3',
    });
    // Every shard that may hold jobs: those of N = 4.
    const client = redis.client();
    const queues = openShardQueues(
      { INLET_PREFIX: 'change', INLET_SHARDS: 4, REDIS_CLUSTER: false },
      client,
    );
    try {
      // Per prediction: three `processing` and three terminal deliveries (under three ids).
      await waitFor(
        'every delivery completed',
        async () => {
          const counts = await Promise.all(queues.map((q) => q.getJobCounts('completed')));
          return counts.reduce((sum, c) => sum + (c.completed ?? 0), 0) === predictions.length * 6;
        },
        { timeoutMs: 45_000 },
      );
      const held = await Promise.all(queues.map((q) => q.getJobCounts('completed')));
      assert.ok(held.filter((c) => (c.completed ?? 0) > 0).length >= 3, 'jobs were in 3+ shards');
      for (const prediction of predictions) {
        const terminalRuns = (terminalIds.get(prediction.id) ?? []).filter((id) => runs.has(id));
        assert.equal(terminalRuns.length, 1, `terminal processor of ${prediction.id} ran once`);
      }
      assert.ok(
        [...runs.values()].every((n) => n === 1),
        'no delivery ran twice',
      );
    } finally {
      await worker.close();
      await closeQueues(queues);
      client.disconnect();
    }
  });
});
