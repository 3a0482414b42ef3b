/**
 * A shard's slot migrates to another master under load (CLUSTER SETSLOT IMPORTING/MIGRATING and
 * MIGRATE, batch by batch, as `redis-cli --cluster reshard` does): the ingest and workers follow
 * `ASK`, `TRYAGAIN` and `MOVED`; every acknowledged delivery is processed exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { queuePrefix, slotOf } from '../../src/core/shards.js';
import { ClusterLoad, recordingWorker } from '../support/cluster-load.js';
import { makeSecret } from '../support/deliveries.js';
import { startTestIngest } from '../support/ingest.js';
import { TestRedisCluster } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

describe('Redis Cluster: a slot migrates under load', () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await TestRedisCluster.start();
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('processes every acknowledged delivery once while its shard moves', {
    timeout: 120_000,
  }, async () => {
    const secret = makeSecret();
    const env = {
      REDIS_URL: cluster.url,
      REDIS_CLUSTER: '1',
      INLET_PREFIX: 'rs',
      INLET_SHARDS: '3',
    };
    const ingest = await startTestIngest({
      ...env,
      REPLICATE_WEBHOOK_SECRET: secret,
      LOG_LEVEL: 'warn',
    });
    const { worker, runs } = await recordingWorker(env);
    const load = new ClusterLoad(ingest.webhookUrl, secret);
    try {
      load.start();
      await waitFor('deliveries before the migration', () => load.accepted.size >= 60, {
        timeoutMs: 30_000,
      });
      const slot = slotOf(`${queuePrefix({ prefix: 'rs', shards: 3, cluster: true }, 0)}:x`);
      const { master } = await cluster.server.ownerOf(slot);
      const target = (await cluster.server.topology()).find(
        (node) => node.role === 'master' && node.port !== master.port,
      );
      assert.ok(target);
      let batches = 0;
      const moved = await cluster.server.migrateSlot(slot, target.port, {
        batch: 5,
        // Deliveries go on between batches: each batch waits for one more acknowledgement.
        onBatch: async () => {
          batches += 1;
          const now = load.accepted.size;
          await waitFor('a delivery during the migration', () => load.accepted.size > now);
        },
      });
      assert.ok(batches >= 5, `the migration took ${batches} batches (${moved} keys)`);
      assert.equal((await cluster.server.ownerOf(slot)).master.port, target.port);
      const atEnd = load.accepted.size;
      await waitFor('deliveries after the migration', () => load.accepted.size >= atEnd + 30, {
        timeoutMs: 30_000,
      });
      await load.stop();

      await waitFor(
        'every acknowledged delivery processed',
        () => [...load.accepted.keys()].every((id) => runs.has(id)),
        { timeoutMs: 60_000 },
      );
      const twice = [...runs.entries()].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], 'no processor ran twice');
      process.stdout.write(
        `# ${load.accepted.size} acknowledged, all processed once; ${moved} keys moved in ${batches} batches; answers ${JSON.stringify(Object.fromEntries(load.answers))}\n`,
      );
    } finally {
      await load.stop();
      await worker.close();
      await ingest.close();
    }
  });
});
