/**
 * `inlet replay` and `inlet inspect` on a Redis Cluster with 4 shards: they find every shard's
 * dead letters and a prediction's records in its shard's slot.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { loadConfig } from '../../src/core/config.js';
import { shardOf } from '../../src/core/shards.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { runCli } from '../support/cli.js';
import { makeSecret, samplePrediction, signedHeaders, webhookId } from '../support/deliveries.js';
import { CapturedLogs, startTestIngest } from '../support/ingest.js';
import { TestRedisCluster } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

describe('replay and inspect on a cluster with 4 shards', () => {
  let cluster: TestRedisCluster;
  before(async () => {
    // No replicas: nothing here fails over or waits for one, and three fewer servers to start.
    cluster = await TestRedisCluster.start({ replicas: 0 });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('re-drives the dead letters of every shard and inspects a prediction by webhook id', {
    timeout: 90_000,
  }, async () => {
    const secret = makeSecret();
    const env = {
      REDIS_URL: cluster.url,
      REDIS_CLUSTER: '1',
      INLET_PREFIX: 'cli',
      INLET_SHARDS: '4',
      INLET_ATTEMPTS: '1',
    };
    const ingest = await startTestIngest({ ...env, REPLICATE_WEBHOOK_SECRET: secret });
    let failing = true;
    const runs: string[] = [];
    let worker: InletWorker | undefined;
    try {
      worker = await startWorker({
        config: loadConfig({ ...env, LOG_LEVEL: 'silent' }),
        logger: new CapturedLogs().logger,
        processors: [
          {
            name: 'flaky',
            handle(prediction) {
              if (failing) throw new bullmq.UnrecoverableError('the bucket is not there');
              runs.push(prediction.id);
            },
          },
        ],
      });
      const predictions = Array.from({ length: 8 }, () => samplePrediction('succeeded'));
      assert.ok(new Set(predictions.map((p) => shardOf(p.id, 4))).size >= 2);
      const ids: string[] = [];
      for (const prediction of predictions) {
        const body = JSON.stringify(prediction);
        const id = webhookId();
        ids.push(id);
        const answer = await fetch(ingest.webhookUrl, {
          method: 'POST',
          headers: signedHeaders(secret, body, id),
          body,
        });
        assert.equal(answer.status, 202);
      }
      const failed = async () =>
        (await Promise.all(ingest.queues.map((q) => q.getFailedCount()))).reduce((a, b) => a + b);
      await waitFor('every delivery dead-lettered', async () => (await failed()) === 8);

      const dry = await runCli(['replay', '--all', '--dry-run'], { env });
      assert.equal(dry.code, 0, dry.stderr);
      const lines = dry.stdout.trim().split('\n');
      assert.equal(
        lines.at(-1),
        'dry run: would re-drive 8 dead-lettered deliveries; nothing moved',
      );
      for (const prediction of predictions) {
        assert.ok(
          lines.some(
            (l) => l.includes(`prediction ${prediction.id}`) && l.includes('failed flaky'),
          ),
        );
      }

      const first = predictions[0] as (typeof predictions)[number];
      const inspect = await runCli(['inspect', ids[0] as string, '--json'], { env });
      assert.equal(inspect.code, 0, inspect.stderr);
      assert.equal(JSON.parse(inspect.stdout).predictionId, first.id);

      failing = false;
      const replay = await runCli(['replay', '--all'], { env });
      assert.equal(replay.code, 0, replay.stderr);
      assert.equal(replay.stdout.trim(), 're-drove 8 of 8 dead-lettered deliveries');
      await waitFor('every re-driven delivery processed', () => runs.length === 8);
      assert.deepEqual(runs.sort(), predictions.map((p) => p.id).sort());
      assert.equal(await failed(), 0);
    } finally {
      await worker?.close();
      await ingest.close();
    }
  });
});
