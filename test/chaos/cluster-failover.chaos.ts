/**
 * A master of a Redis Cluster dies under load (SIGKILL) and its replica takes over: every
 * delivery the ingest acknowledged is processed; 503s are allowed while the slot has no master,
 * and `/readyz` says so. The ingest runs with INLET_MIN_REPLICAS=1: an acknowledged delivery is
 * on the replica that is promoted. 3 masters + 3 replicas, 3 shards, all on this machine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { layoutOf, queuePrefix, slotOf } from '../../src/core/shards.js';
import { ClusterLoad, recordingWorker } from '../support/cluster-load.js';
import { makeSecret } from '../support/deliveries.js';
import { startTestIngest } from '../support/ingest.js';
import { TestRedisCluster } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

describe('Redis Cluster: a master fails over under load', () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await TestRedisCluster.start({ nodeTimeoutMs: 1000 });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('processes every acknowledged delivery; 503 only while the slot has no master', {
    timeout: 120_000,
  }, async () => {
    const secret = makeSecret();
    const env = {
      REDIS_URL: cluster.url,
      REDIS_CLUSTER: '1',
      INLET_PREFIX: 'fo',
      INLET_SHARDS: '3',
      INLET_STALLED_INTERVAL_MS: '1000',
      INLET_LOCK_DURATION_MS: '3000',
    };
    const ingest = await startTestIngest({
      ...env,
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_MIN_REPLICAS: '1',
      LOG_LEVEL: 'warn',
    });
    const { worker, runs } = await recordingWorker(env);
    const load = new ClusterLoad(ingest.webhookUrl, secret);
    try {
      load.start();
      await waitFor('deliveries before the failover', () => load.accepted.size >= 40, {
        timeoutMs: 30_000,
      });
      const slot = slotOf(
        `${queuePrefix(layoutOf({ ...env, INLET_SHARDS: 3, REDIS_CLUSTER: true, INLET_PREFIX: 'fo' }), 1)}:x`,
      );
      const { master, replicas } = await cluster.server.ownerOf(slot);
      await cluster.server.node(master.port).crash();
      const before503 = load.count('503');
      await waitFor('/readyz to say a shard cannot be stored', async () => {
        return (await fetch(`${ingest.url}/readyz`)).status === 503;
      });
      await cluster.server.waitUntilHealthy(30_000);
      assert.equal(
        (await cluster.server.ownerOf(slot)).master.port,
        replicas[0]?.port,
        'the replica took the slot over',
      );
      await waitFor(
        '/readyz to recover',
        async () => {
          return (await fetch(`${ingest.url}/readyz`)).status === 200;
        },
        { timeoutMs: 30_000 },
      );
      const atRecovery = load.accepted.size;
      await waitFor('deliveries after the failover', () => load.accepted.size >= atRecovery + 40, {
        timeoutMs: 30_000,
      });
      await load.stop();
      assert.ok(load.count('503') > before503, 'some deliveries met the outage (503)');

      await waitFor(
        'every acknowledged delivery processed',
        () => [...load.accepted.keys()].every((id) => runs.has(id)),
        { timeoutMs: 60_000 },
      );
      const twice = [...runs.values()].filter((n) => n > 1).length;
      process.stdout.write(
        `# ${load.accepted.size} acknowledged, all processed; answers ${JSON.stringify(Object.fromEntries(load.answers))}; processors run twice: ${twice}\n`,
      );
    } finally {
      await load.stop();
      await worker.close();
      await ingest.close();
    }
  });
});
