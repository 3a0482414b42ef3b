import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/core/config.js';
import type { Prediction } from '../../src/core/prediction.js';
import { closeRedis, corkUntilImmediate, createRedis } from '../../src/core/redis.js';
import { queuePrefix, shardOf, slotOf } from '../../src/core/shards.js';
import type { Processor } from '../../src/workers/processor.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { makeSecret, postSigned, samplePrediction } from '../support/deliveries.js';
import { CapturedLogs, startTestIngest } from '../support/ingest.js';
import { socketReads, TestRedisCluster } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/** Records every run: `<status> <prediction id>` per call, for once-per-prediction checks. */
function recorder(): Processor & { runs: string[] } {
  const runs: string[] = [];
  return {
    name: 'record',
    runs,
    handle(prediction: Prediction) {
      runs.push(`${prediction.status} ${prediction.id}`);
    },
  };
}

describe('Redis Cluster backend (3 masters, 3 replicas)', () => {
  let cluster: TestRedisCluster;

  before(async () => {
    cluster = await TestRedisCluster.start();
  });
  after(async () => {
    await cluster?.destroy();
  });

  for (const shards of [1, 6]) {
    it(`keeps the single-node guarantees with ${shards} shard(s)`, {
      timeout: 60_000,
    }, async () => {
      const prefix = shards === 1 ? `{c${shards}}` : `c${shards}`;
      const env = {
        REDIS_URL: cluster.url,
        REDIS_CLUSTER: '1',
        INLET_PREFIX: prefix,
        INLET_SHARDS: String(shards),
      };
      const secret = makeSecret();
      const ingest = await startTestIngest({ ...env, REPLICATE_WEBHOOK_SECRET: secret });
      const processor = recorder();
      let worker: InletWorker | undefined;
      try {
        assert.equal((await fetch(`${ingest.url}/readyz`)).status, 200);
        const predictions = Array.from({ length: 24 }, () => samplePrediction('succeeded'));
        // Each prediction: `processing` once, `succeeded` twice under two ids, and each id twice.
        const sent = await Promise.all(
          predictions.map(async (prediction) => {
            const processing = await postSigned(ingest.webhookUrl, secret, {
              ...prediction,
              status: 'processing',
            });
            const first = await postSigned(ingest.webhookUrl, secret, prediction);
            const again = await postSigned(ingest.webhookUrl, secret, prediction, first.id);
            const second = await postSigned(ingest.webhookUrl, secret, prediction);
            return [processing.status, first.status, again.status, second.status];
          }),
        );
        for (const answers of sent) {
          assert.deepEqual(answers, [202, 202, 200, 202], ingest.logs.text.slice(-2000));
        }

        worker = await startWorker({
          config: loadConfig({ ...env, LOG_LEVEL: 'silent' }),
          logger: new CapturedLogs().logger,
          processors: [processor],
        });
        // Generous guard: six shards start six blocking cluster clients, slow on a busy machine.
        await waitFor(
          'every delivery completed',
          async () => {
            const counts = await Promise.all(ingest.queues.map((q) => q.getJobCounts('completed')));
            const completed = counts.reduce((sum, c) => sum + (c.completed ?? 0), 0);
            return completed === predictions.length * 3;
          },
          { timeoutMs: 45_000 },
        );
        for (const prediction of predictions) {
          const runs = processor.runs.filter((run) => run.endsWith(prediction.id));
          // The terminal state runs once. The `processing` delivery runs unless a worker took
          // the `succeeded` one first (both can be picked at once): then it is recorded as late
          // and not dispatched, by design.
          assert.deepEqual(
            runs.filter((run) => run.startsWith('succeeded')),
            [`succeeded ${prediction.id}`],
          );
          assert.ok(runs.filter((run) => run.startsWith('processing')).length <= 1, String(runs));
        }
        assert.equal(ingest.queues.length, shards);
        if (shards > 1) {
          // The shards' queues sit in different slots, on more than one master.
          const owners = new Set<number>();
          for (let i = 0; i < shards; i++) {
            const slot = slotOf(`${queuePrefix({ prefix, shards, cluster: true }, i)}:x`);
            owners.add((await cluster.server.ownerOf(slot)).master.port);
          }
          assert.ok(owners.size >= 2, `shards on ${owners.size} master(s)`);
          const used = new Set(predictions.map((p) => shardOf(p.id, shards)));
          assert.ok(used.size >= 4, `predictions went to ${used.size} shards`);
        }
        const metrics = await (await fetch(`${ingest.url}/metrics`)).text();
        assert.match(metrics, /inlet_redis_up 1/);
        assert.match(
          metrics,
          new RegExp(`inlet_queue_jobs\\{[^}]*state="completed"[^}]*\\} ${predictions.length * 3}`),
        );
      } finally {
        await worker?.close();
        await ingest.close();
      }
    });
  }

  it('answers 202 only once INLET_MIN_REPLICAS replicas have the delivery', {
    timeout: 30_000,
  }, async () => {
    const secret = makeSecret();
    const env = {
      REDIS_URL: cluster.url,
      REDIS_CLUSTER: '1',
      INLET_PREFIX: 'w',
      INLET_SHARDS: '3',
      REPLICATE_WEBHOOK_SECRET: secret,
    };
    const one = await startTestIngest({ ...env, INLET_MIN_REPLICAS: '1' });
    // Each master has one replica: two can never confirm.
    const two = await startTestIngest({
      ...env,
      INLET_MIN_REPLICAS: '2',
      INLET_REPLICA_TIMEOUT_MS: '100',
    });
    try {
      const layout = { prefix: 'w', shards: 3, cluster: true };
      for (let i = 0; i < 6; i++) {
        const prediction = samplePrediction();
        const answer = await postSigned(one.webhookUrl, secret, prediction);
        assert.equal(answer.status, 202, one.logs.text.slice(-1500));
        // Acknowledged means the replica of the master that stored it has the job already.
        const jobKey = `${queuePrefix(layout, shardOf(prediction.id, 3))}:deliveries:${answer.id}`;
        const { replicas } = await cluster.server.ownerOf(slotOf(jobKey));
        const replica = cluster.server.connect(replicas[0]?.port ?? 0);
        try {
          await replica.call('READONLY');
          assert.equal(await replica.exists(jobKey), 1, `the replica has ${jobKey}`);
        } finally {
          replica.disconnect();
        }
      }
      const refused = await postSigned(two.webhookUrl, secret, samplePrediction());
      assert.equal(refused.status, 503);
      assert.equal(refused.retryAfter, '5');
      assert.match(two.logs.text, /only 1 of 2 replicas confirmed/);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('sends the commands of one turn in one write per master, each to its own node', async () => {
    const client = createRedis(cluster.url, { role: 'fail-fast', cluster: true });
    try {
      // ioredis connects to a node at its first command: ping every master once.
      const masters = await waitFor('the client to know the three masters', async () => {
        const nodes = client.nodes('master');
        if (nodes.length !== 3) return undefined;
        await Promise.all(nodes.map((node) => node.ping().catch(() => undefined)));
        return nodes.every((node) => node.status === 'ready') ? nodes : undefined;
      });
      const reads = () => Promise.all(masters.map((node) => socketReads(node)));
      const before = await reads();
      const keys = Array.from({ length: 300 }, (_, i) => `cork:${i}`);
      const answers = await Promise.all(
        keys.map((key) => {
          corkUntilImmediate(client);
          return client.set(key, key);
        }),
      );
      const after = await reads();

      assert.deepEqual(answers, Array(300).fill('OK'));
      assert.deepEqual(await Promise.all(keys.map((key) => client.get(key))), keys);
      // Per master: one read for its share of the 300 SETs, one for the second INFO, and at most
      // one more for a replica's acknowledgement or the client's slot refresh in between.
      for (const [at, count] of after.entries()) {
        const grew = count - (before[at] as number);
        assert.ok(grew >= 2 && grew <= 3, `master ${at}: ${grew} reads`);
      }
    } finally {
      await closeRedis(client);
    }
  });

  it('leaves no timer behind a client closed while it refreshes its slot map', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const client = createRedis(cluster.url, { role: 'patient', cluster: true });
    await client.ping();
    // Copies, as BullMQ makes its blocking connections, refreshing every millisecond: a refresh
    // is in flight at almost any moment, and each copy is closed at a different one. ioredis
    // re-arms the refresh timer when such a refresh ends, and then keeps it (and the process)
    // alive for ever.
    const copies = Array.from({ length: 20 }, () =>
      client.duplicate([], { slotsRefreshInterval: 1 }),
    );
    try {
      await Promise.all(copies.map((copy) => copy.ping()));
      for (const [at, copy] of copies.entries()) {
        await new Promise((resolve) => setTimeout(resolve, at % 4));
        copy.disconnect();
      }
      await closeRedis(client);
      assert.ok(copies.every((copy) => copy.status === 'end' || copy.status === 'close'));
      // Polled here rather than with waitFor, whose own timers would be counted. Refreshes in
      // flight at the close end within slotsRefreshTimeout (2 s).
      for (const end = Date.now() + 5_000; timers() > before && Date.now() < end; ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(timers() <= before, `timers left by closed clients: ${timers() - before}`);
    } finally {
      // Were the fault back, the timers left would keep this file's process from ever exiting:
      // stopped here through ioredis's own (private) method, so that the test fails instead.
      for (const copy of copies) {
        (copy as unknown as { clearNodesRefreshInterval(): void }).clearNodesRefreshInterval();
      }
    }
  });

  it('refuses a prefix whose keys would not share a slot, in one line', () => {
    const base = { REDIS_URL: cluster.url, REDIS_CLUSTER: '1' };
    assert.throws(
      () => loadConfig({ ...base, INLET_PREFIX: 'inlet' }),
      (error: Error) =>
        error instanceof ConfigError &&
        /^INLET_PREFIX: a Redis Cluster needs a hash tag .*INLET_PREFIX=\{inlet\}/.test(
          error.message,
        ) &&
        !error.message.includes('\n'),
    );
    assert.throws(
      () => loadConfig({ ...base, INLET_PREFIX: '{inlet}', INLET_SHARDS: '4' }),
      /INLET_PREFIX: with INLET_SHARDS above 1 leave out the braces/,
    );
    assert.throws(
      () => loadConfig({ REDIS_URL: cluster.url }),
      /REDIS_URL: names 6 hosts; set REDIS_CLUSTER=1/,
    );
    assert.equal(loadConfig({ ...base, INLET_PREFIX: '{inlet}' }).INLET_SHARDS, 1);
  });
});
