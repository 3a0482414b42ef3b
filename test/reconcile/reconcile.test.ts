import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { loadConfig } from '../../src/core/config.js';
import { type DeliveryJob, jobIdFor, QUEUE_NAME } from '../../src/core/job.js';
import { type DeliveryStore, runReconcilePass } from '../../src/reconcile/reconcile-pass.js';
import { reconcileKeys } from '../../src/reconcile/reconcile-state.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { ReplicateClient } from '../../src/reconcile/replicate-client.js';
import { defineProcessor, type ProcessorContext } from '../../src/workers/processor.js';
import { startWorker } from '../../src/workers/worker.js';
import { webhookId } from '../support/deliveries.js';
import { FakeReplicate } from '../support/fake-replicate.js';
import { startReadyIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';
import { predictionAt } from './helpers.js';

const silent = pino({ level: 'silent' });
let redis: TestRedis;
let fake: FakeReplicate;
let client: Redis;
let count = 0;

before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
});
after(async () => {
  client.disconnect();
  await redis.destroy();
});

/** A fresh fake API and prefix per test. */
async function world(env: Record<string, string> = {}) {
  fake = await FakeReplicate.start();
  count += 1;
  const prefix = `rc${process.pid}x${count}`;
  const config = loadConfig({
    REDIS_URL: redis.url,
    INLET_PREFIX: prefix,
    REPLICATE_API_TOKEN: fake.token,
    REPLICATE_API_BASE_URL: fake.url,
    INLET_RECONCILE_GRACE_SECONDS: '60',
    INLET_ATTEMPTS: '3',
    INLET_BACKOFF_MS: '50',
    ...env,
  });
  return { prefix, config };
}

/** A client with a quick backoff and a store that records what it is given. */
function parts(budget = 50) {
  const api = new ReplicateClient({
    baseUrl: fake.url,
    token: fake.token,
    budget,
    backoffMs: 10,
  });
  const stored: DeliveryJob[] = [];
  const store: DeliveryStore = {
    enqueueDelivery: async (delivery) => {
      const again = stored.some((d) => d.webhookId === delivery.webhookId);
      if (!again) stored.push(delivery);
      return again ? 'duplicate' : 'accepted';
    },
  };
  return { api, stored, store };
}

describe('inlet reconcile', () => {
  it('runs the terminal processors of a prediction whose webhooks were all dropped exactly once, and a late webhook runs nothing again', {
    timeout: 60_000,
  }, async () => {
    const { prefix, config } = await world();
    const succeeded = predictionAt('succeeded', 10);
    const failed = predictionAt('failed', 12);
    fake.put(succeeded, failed);
    const runs: Array<{ id: string; status: string; source: ProcessorContext['source'] }> = [];
    const recorder = defineProcessor({
      name: 'recorder',
      statuses: ['succeeded', 'failed'],
      handle(prediction, ctx) {
        runs.push({ id: prediction.id, status: prediction.status, source: ctx.source });
      },
    });
    const reconciler = new Reconciler(config, silent);
    const worker = await startWorker({ config, logger: silent, processors: [recorder] });
    const queue = new bullmq.Queue<DeliveryJob>(QUEUE_NAME, { connection: client, prefix });
    const ingest = await startReadyIngest({
      config: loadConfig({
        REDIS_URL: redis.url,
        INLET_PREFIX: prefix,
        INLET_INSECURE_SKIP_VERIFY: '1',
        PORT: '0',
        HOST: '127.0.0.1',
      }),
      logger: silent,
    });
    try {
      const first = await reconciler.pass();
      assert.deepEqual(
        first.reconciled.map((r) => [r.predictionId, r.status, r.outcome]).sort(),
        [
          [failed.id, 'failed', 'accepted'],
          [succeeded.id, 'succeeded', 'accepted'],
        ].sort(),
      );
      assert.equal(first.reconciled[0]?.webhookId, `reconcile_${succeeded.id}_succeeded`);
      await waitFor('two processor runs', () => runs.length === 2, { timeoutMs: 15_000 });
      assert.ok(runs.every((r) => r.source === 'reconcile'));

      // A second pass finds both recorded by the workers and delivers nothing.
      const second = await reconciler.pass();
      assert.equal(second.reconciled.length, 0);
      assert.ok(second.recorded >= 1);

      // Replicate's webhook arrives late, under its own id: stored, but nothing runs again.
      const late = webhookId();
      const answer = await fetch(`${ingest.url}/webhooks/replicate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': late },
        body: JSON.stringify(succeeded),
      });
      assert.equal(answer.status, 202);
      await waitFor(
        'the late webhook processed',
        async () => Boolean((await queue.getJob(jobIdFor(late)))?.finishedOn),
        { timeoutMs: 15_000 },
      );
      const job = await queue.getJob(jobIdFor(late));
      assert.deepEqual(job?.returnvalue, { outcome: 'already_done' });
      assert.equal(runs.length, 2, 'the processor did not run again');
    } finally {
      await ingest.close();
      await worker.close();
      await queue.close();
      await reconciler.close();
      await fake.close();
    }
  });

  it('leaves recorded, unfinished and recently finished predictions alone, and a dry run writes nothing', async () => {
    const { prefix } = await world();
    const recorded = predictionAt('succeeded', 20);
    const running = predictionAt('processing', 3);
    const recent = predictionAt('succeeded', 1.5); // completed 30 s ago: its webhook may come
    const lost = predictionAt('canceled', 30);
    const tooOld = predictionAt('succeeded', 60 * 25); // outside the 24 h window
    fake.put(recorded, running, recent, lost, tooOld);
    await client.hset(`${prefix}:prediction:${recorded.id}`, 'status', 'succeeded');
    const { api, stored } = parts();
    try {
      const dry = await runReconcilePass({
        redis: client,
        prefix,
        api,
        windowMs: 86_400_000,
        graceMs: 60_000,
        dryRun: true,
      });
      assert.deepEqual(
        dry.reconciled.map((r) => [r.predictionId, r.outcome]),
        [[lost.id, 'dry-run']],
      );
      assert.equal(dry.recorded, 1);
      assert.equal(dry.deferred, 2);
      assert.equal(dry.stoppedBy, 'window');
      assert.deepEqual(await client.keys(`${prefix}:reconcile:*`), [], 'a dry run writes nothing');
      assert.equal(stored.length, 0);
    } finally {
      await fake.close();
    }
  });

  it('asks by id about predictions it saw unfinished, once they are due', async () => {
    const { prefix } = await world();
    const running = predictionAt('processing', 3);
    fake.put(running);
    const store = parts().store;
    const first = await runReconcilePass({
      redis: client,
      prefix,
      api: parts().api,
      store,
      windowMs: 86_400_000,
      graceMs: 60_000,
    });
    assert.equal(first.deferred, 1);
    assert.notEqual(await client.zscore(reconcileKeys.open(prefix), running.id), null);

    // It finished; its webhook never came; and it is not listed (another account's, say).
    const done = {
      ...running,
      status: 'succeeded' as const,
      completed_at: new Date().toISOString(),
    };
    fake.put(done);
    fake.unlisted.add(done.id);
    const { api, stored, store: recording } = parts();
    try {
      const later = await runReconcilePass({
        redis: client,
        prefix,
        api,
        store: recording,
        windowMs: 86_400_000,
        graceMs: 60_000,
        now: () => Date.now() + 10 * 60_000,
      });
      assert.equal(later.gets, 1);
      assert.deepEqual(
        stored.map((d) => [d.prediction.id, d.prediction.status, d.source]),
        [[done.id, 'succeeded', 'reconcile']],
      );
      assert.equal(await client.zscore(reconcileKeys.open(prefix), running.id), null);
    } finally {
      await fake.close();
    }
  });

  it('stops asking about a prediction still unfinished past the window', async () => {
    const { prefix } = await world();
    const stuck = predictionAt('processing', 60 * 25);
    fake.put(stuck);
    fake.unlisted.add(stuck.id);
    await client.zadd(reconcileKeys.open(prefix), Date.now() - 1000, stuck.id);
    try {
      const report = await runReconcilePass({
        redis: client,
        prefix,
        api: parts().api,
        store: parts().store,
        windowMs: 86_400_000,
        graceMs: 60_000,
      });
      assert.equal(report.gets, 1);
      assert.equal(report.deferred, 0);
      assert.equal(await client.zscore(reconcileKeys.open(prefix), stuck.id), null);
    } finally {
      await fake.close();
    }
  });

  it('honours 429 with Retry-After, backs off on 5xx, and ends the pass on a long Retry-After', {
    timeout: 30_000,
  }, async () => {
    const { prefix } = await world();
    const lost = predictionAt('succeeded', 30);
    fake.put(lost);
    try {
      fake.faults.push(
        { status: 429, headers: { 'retry-after': '1' } },
        { status: 503 },
        { status: 502 },
      );
      const { api, store, stored } = parts();
      const report = await runReconcilePass({
        redis: client,
        prefix,
        api,
        store,
        windowMs: 86_400_000,
        graceMs: 60_000,
      });
      assert.equal(report.stoppedBy, 'end');
      assert.equal(report.requests, 4, 'one 429, two 5xx, then the page');
      assert.equal(stored.length, 1);

      fake.faults.push({ status: 429, headers: { 'retry-after': '3600' } });
      const limited = await runReconcilePass({
        redis: client,
        prefix: `${prefix}b`,
        api: parts().api,
        store,
        windowMs: 86_400_000,
        graceMs: 60_000,
      });
      assert.equal(limited.stoppedBy, 'api-error');
      assert.match(limited.error ?? '', /429.*3600/);
      assert.equal(limited.requests, 1, 'it did not wait an hour or hammer the API');
    } finally {
      await fake.close();
    }
  });

  it('keeps within its request budget and resumes where it stopped', async () => {
    const { prefix } = await world();
    fake.pageSize = 2;
    const lost = Array.from({ length: 7 }, (_, i) => predictionAt('succeeded', 30 + i));
    fake.put(...lost);
    const delivered: string[] = [];
    const store: DeliveryStore = {
      enqueueDelivery: async (d) => {
        delivered.push(d.prediction.id);
        return 'accepted';
      },
    };
    const pass = () =>
      runReconcilePass({
        redis: client,
        prefix,
        api: parts(2).api,
        store,
        windowMs: 86_400_000,
        graceMs: 60_000,
      });
    try {
      const first = await pass();
      assert.equal(first.stoppedBy, 'budget');
      assert.equal(first.requests, 2);
      const second = await pass();
      assert.match(fake.requests.at(-2) ?? '', /cursor=/, 'the second pass resumed at a cursor');
      assert.equal(second.stoppedBy, 'end');
      assert.deepEqual([...delivered].sort(), lost.map((p) => p.id).sort(), 'each once');

      // A newer prediction: the next walk stops at the last walk's newest.
      const newer = predictionAt('failed', 10);
      fake.put(newer);
      for (const p of lost)
        await client.hset(`${prefix}:prediction:${p.id}`, 'status', 'succeeded');
      const third = await pass();
      assert.equal(third.stoppedBy, 'high-water');
      assert.ok(third.pages <= 2, 'it read only the pages above the last walk (and an overlap)');
      assert.equal(delivered.at(-1), newer.id);
    } finally {
      await fake.close();
    }
  });

  it('runs one pass at a time across reconcilers: one holds the lease, the other stands by', {
    timeout: 30_000,
  }, async () => {
    const { config } = await world({
      INLET_RECONCILE_INTERVAL_SECONDS: '1',
      INLET_RECONCILE_LEASE_MS: '1000',
    });
    fake.pageSize = 1;
    fake.delayMs = 20;
    fake.put(...Array.from({ length: 4 }, (_, i) => predictionAt('processing', 2 + i)));
    const passes = [0, 0];
    const make = (i: 0 | 1) =>
      new Reconciler(config, silent, {
        onPass: () => {
          passes[i] = (passes[i] ?? 0) + 1;
        },
      });
    const a = make(0);
    const b = make(1);
    const runs = [a.run(), b.run()];
    try {
      await waitFor('three passes', () => (passes[0] ?? 0) + (passes[1] ?? 0) >= 3, {
        timeoutMs: 20_000,
      });
      assert.ok(passes[0] === 0 || passes[1] === 0, `only the lease holder ran passes: ${passes}`);
      assert.equal(fake.maxInFlight, 1, 'never two passes at once');
      const [holder, standby, standbyIndex] = (passes[0] ?? 0) > 0 ? [a, b, 1] : [b, a, 0];
      await holder.close();
      await waitFor('the standby taking over', () => (passes[standbyIndex] ?? 0) > 0, {
        timeoutMs: 10_000,
      });
      assert.equal(fake.maxInFlight, 1);
      await standby.close();
      await Promise.all(runs);
    } finally {
      await a.close();
      await b.close();
      await fake.close();
    }
  });
});
