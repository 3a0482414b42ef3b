import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Job } from 'bullmq';
import { pino } from 'pino';
import { loadConfig } from '../../src/core/config.js';
import { QUEUE_NAME } from '../../src/core/job.js';
import { defineProcessor } from '../../src/index.js';
import { installLedgerOnFetch, LedgerOnFetch } from '../../src/workers/ledger-on-fetch.js';
import { type FinishArgs, ledgerKeys } from '../../src/workers/prediction-ledger.js';
import { startWorker } from '../../src/workers/worker.js';
import { samplePrediction } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';
import { FAST, WorkerCluster } from './fixtures/harness.js';

/** Calls of each command Redis ran since its statistics were reset. */
async function commandCalls(client: WorkerCluster['client']): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const line of (await client.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match) calls.set(match[1] as string, Number(match[2]));
  }
  return calls;
}

describe('the ledger rides on BullMQ fetches', () => {
  let redis: TestRedis;
  let cluster: WorkerCluster;
  const quiet = pino({ level: 'warn' }, new Writable({ write: (_c, _e, done) => done() }));

  before(async () => {
    redis = await TestRedis.start();
    cluster = await WorkerCluster.start(redis, {});
  });
  after(async () => {
    await cluster.stop();
    await redis.destroy();
  });

  it('a delivery costs one script call: begin and finish go with the fetch and the completion', async () => {
    const ran: string[] = [];
    const record = defineProcessor({
      name: 'record',
      handle(prediction) {
        ran.push(prediction.id);
      },
    });
    const config = loadConfig({
      ...FAST,
      REDIS_URL: redis.url,
      INLET_PREFIX: cluster.prefix,
      WORKER_CONCURRENCY: '4',
    });
    await cluster.queue.pause();
    const predictions = Array.from({ length: 40 }, () => samplePrediction('succeeded'));
    const ids = [];
    for (const prediction of predictions) ids.push(await cluster.deliver(prediction));
    const worker = await startWorker({ config, logger: quiet, processors: [record] });
    try {
      await cluster.client.config('RESETSTAT');
      await cluster.queue.resume();
      // Polled with a plain command: BullMQ's getJobState is a script call.
      const completed = `${cluster.prefix}:${QUEUE_NAME}:completed`;
      await waitFor('every delivery completed', async () => {
        return (await cluster.client.zcard(completed)) === ids.length;
      });
      const calls = await commandCalls(cluster.client);
      // Beside one call per delivery: resuming the queue, a first fetch per job slot (4), and
      // fetches that find the queue empty at the end. The three calls a delivery took before
      // (begin, finish, BullMQ's completion) would be more than 120.
      const scripts = (calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0);
      assert.ok(scripts <= ids.length + 10, `${scripts} script calls for ${ids.length} deliveries`);
      assert.deepEqual(ran.sort(), predictions.map((p) => p.id).sort(), 'each ran once');
      for (const prediction of predictions) {
        const ledger = await cluster.client.hgetall(
          ledgerKeys.prediction(cluster.prefix, prediction.id),
        );
        assert.equal(ledger.status, 'succeeded');
        assert.match(String(ledger['done:record']), / fetch:/, 'recorded by the fetched try');
        const lock = await cluster.client.exists(ledgerKeys.lock(cluster.prefix, prediction.id));
        assert.equal(lock, 0, 'the prediction lock given back');
      }
    } finally {
      await worker.close();
    }
  });
});

describe('LedgerOnFetch', () => {
  const ledger = { prefix: 'p', lockTtlMs: 1000, retentionSeconds: 60 };
  const args: FinishArgs = {
    predictionId: 'pr',
    webhookId: 'w',
    token: 't',
    processor: 'a',
    terminal: '1',
  };
  const job = (id: string, processedOn: number, attemptsStarted: number) =>
    ({ id, processedOn, attemptsStarted }) as Job;
  /** A fetch script's answer: `begun` for the job `id` fetched at `processedOn`, try `ats`. */
  const fetched = (id: string, begun: string[] | null, processedOn = 5, ats = 1) => [
    'inlet',
    begun,
    null,
    [['processedOn', String(processedOn), 'ats', String(ats)], id, 0, 0],
  ];

  it('hands a fetched decision to that try of the job only, once', () => {
    const onFetch = new LedgerOnFetch('q:', ledger, []);
    const call = onFetch.call();
    const bullmq = call.answered(fetched('j1', ['run', '', 'a']));
    assert.deepEqual(bullmq, [['processedOn', '5', 'ats', '1'], 'j1', 0, 0]);
    assert.equal(onFetch.take(job('j1', 5, 2)), undefined, 'another try of the job');
    const again = onFetch.call();
    again.answered(fetched('j1', ['run', '', 'a']));
    const taken = onFetch.take(job('j1', 5, 1));
    assert.deepEqual(taken?.reply, ['run', '', 'a']);
    assert.equal(taken?.token, again.args[1], 'the try token the script took the lock with');
    assert.notEqual(again.args[1], call.args[1], 'a token per fetch');
    assert.equal(onFetch.take(job('j1', 5, 1)), undefined, 'taken once');
    onFetch.call().answered(fetched('j2', null));
    assert.equal(onFetch.take(job('j2', 5, 1)), undefined, 'not a delivery: no decision');
  });

  /** A finish held for job `j1`, whose call of its own answers 1 and is counted. */
  function heldFinish() {
    const onFetch = new LedgerOnFetch('q:', ledger, []);
    const alone = { calls: 0 };
    const finished = onFetch.finishWithJob('j1', args, async () => {
      alone.calls++;
      return 1;
    });
    return { onFetch, alone, finished };
  }

  it('sends a finish with the completion of its job, in the same turn', async () => {
    const { onFetch, alone, finished } = heldFinish();
    const call = onFetch.call('j1');
    assert.deepEqual(call.args, ['p', call.args[1], 'pr', 'w', 't', 'a', '1']);
    call.answered(['inlet', null, 0, 0]);
    assert.equal(await finished, 0, "the completion's answer");
    assert.equal(alone.calls, 0);
  });

  it('sends a finish alone when its job is not completed in that turn', async () => {
    const { onFetch, alone, finished } = heldFinish();
    assert.equal(onFetch.call('other').args.length, 2, 'not for another job');
    assert.equal(await finished, 1);
    assert.equal(alone.calls, 1);
    assert.equal(onFetch.call('j1').args.length, 2, 'not sent twice');
  });

  it('sends an earlier finish of the same job alone when a second one is held', async () => {
    const { onFetch, alone, finished } = heldFinish();
    const second = onFetch.finishWithJob('j1', { ...args, token: 't2' }, async () => 7);
    assert.equal(await finished, 1, 'the earlier one answered, not dropped');
    assert.equal(alone.calls, 1);
    const call = onFetch.call('j1');
    assert.equal(call.args[4], 't2', 'the second rides with the completion');
    call.answered(['inlet', null, 1, 0]);
    assert.equal(await second, 1);
  });

  it('sends a finish alone when the completion that carried it failed', async () => {
    const { onFetch, alone, finished } = heldFinish();
    onFetch.call('j1').failed();
    assert.equal(await finished, 1);
    assert.equal(alone.calls, 1);
  });

  it('builds one pair of scripts for a connection, so its shards must share their settings', async () => {
    const shard = (lockTtlMs: number) =>
      new LedgerOnFetch(`q${lockTtlMs}:`, { ...ledger, lockTtlMs }, []);
    assert.throws(
      () => installLedgerOnFetch({} as never, [shard(1000), shard(2000)]),
      /shards of one connection differ/,
    );
    const server = await TestRedis.start();
    const client = server.client();
    try {
      installLedgerOnFetch(client, [shard(1000)]);
      assert.throws(
        () => installLedgerOnFetch(client, [shard(2000)]),
        /shards of one connection differ/,
        'a second install on the same connection, whose scripts are already defined',
      );
    } finally {
      client.disconnect();
      await server.destroy();
    }
  });
});
