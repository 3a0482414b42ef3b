import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { pack } from 'msgpackr';
import { bullmq } from '../../../src/core/commonjs-packages.js';
import { QUEUE_NAME } from '../../../src/core/job.js';
import { PREDICTION_STATUSES } from '../../../src/core/prediction.js';
import { beginDelivery3 } from '../../../src/core/scripts/begin-delivery-3.js';
import { bullmqScript, readsOnly } from '../../../src/core/scripts/bullmq-script.js';
import {
  type FetchLedgerSettings,
  luaString,
  moveToActiveAndBegin11,
  moveToFinishedAndBegin14,
} from '../../../src/core/scripts/fetch-and-begin.js';
import { finishDelivery3 } from '../../../src/core/scripts/finish-delivery-3.js';
import { defineScripts } from '../../../src/core/scripts/redis-script.js';
import { ledgerKeys } from '../../../src/workers/prediction-ledger.js';
import { samplePrediction } from '../../support/deliveries.js';
import { TestRedis } from '../../support/redis-server.js';

/**
 * The fetch-and-begin scripts wrap BullMQ's private moveToActive and moveToFinished and run the
 * ledger's begin and finish in the same call. Each case here starts from one saved Redis state
 * twice: once through BullMQ's own script with the ledger's own scripts (finishDelivery-3 before,
 * beginDelivery-3 after, as a worker called them), once through the wrapped script. Both must
 * leave the same Redis, key by key, and give the same answers.
 */

const PREFIX = 'fab';
const QUEUE = `${PREFIX}:${QUEUE_NAME}:`;
const NOW = 1_700_000_000_000;
const LOCK_MS = 30_000;
const RETENTION = 3600;
const WANTED: Record<string, string[]> = {
  processing: ['a'],
  succeeded: ['a', 'b'],
  failed: ['a'],
};
const SETTINGS: FetchLedgerSettings = {
  lockTtlMs: LOCK_MS,
  retentionSeconds: RETENTION,
  wanted: new Map(PREDICTION_STATUSES.map((s) => [s, WANTED[s] ?? []])),
};
const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

const queueKey = (name: string) => QUEUE + name;
const QUEUE_KEYS = [
  'wait',
  'active',
  'prioritized',
  'events',
  'stalled',
  'limiter',
  'delayed',
  'paused',
  'meta',
  'pc',
].map(queueKey);

let redis: TestRedis;
let client: Redis;

before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
  defineScripts(client, moveToActiveAndBegin11(SETTINGS), moveToFinishedAndBegin14(SETTINGS));
  defineScripts(client, beginDelivery3, finishDelivery3);
  for (const [name, keys] of [
    ['moveToActive', 11],
    ['moveToFinished', 14],
  ] as const) {
    const own = bullmqScript(name, keys);
    client.defineCommand(`bullmq_${name}`, { numberOfKeys: keys, lua: own.content });
  }
});
after(async () => {
  client.disconnect();
  await redis.destroy();
});
beforeEach(async () => {
  await client.flushall();
});

type Call = (args: Array<string | number | Buffer>) => Promise<unknown>;
const command =
  (name: string): Call =>
  (args) =>
    (client as unknown as Record<string, Call>)[name]?.call(client, args) as Promise<unknown>;

/** BullMQ's moveToActive arguments for a worker whose fetches hold job locks as `token`. */
function moveToActiveArgs(token: string): Array<string | number | Buffer> {
  return [...QUEUE_KEYS, queueKey('marker'), QUEUE, NOW, pack({ token, lockDuration: LOCK_MS })];
}

/** BullMQ's moveToFinished arguments that complete `jobId` and fetch the next job. */
function completeArgs(jobId: string, token: string): Array<string | number | Buffer> {
  return [
    ...QUEUE_KEYS,
    queueKey('completed'),
    queueKey(jobId),
    queueKey('metrics:completed'),
    queueKey('marker'),
    jobId,
    NOW + 5,
    'returnvalue',
    '{"outcome":"processed"}',
    'completed',
    1,
    QUEUE,
    pack({ token, keepJobs: { count: 100 }, lockDuration: LOCK_MS, attempts: 3 }),
    '',
  ];
}

/** The ledger's arguments after BullMQ's: `tryToken` is the fetched job's try. */
const ledgerArgs = (tryToken: string) => [PREFIX, tryToken];

interface Delivery {
  webhookId: string;
  predictionId: string;
  status: string;
}

async function addJob(jobId: string, data: unknown): Promise<void> {
  const queue = new bullmq.Queue(QUEUE_NAME, { connection: client, prefix: PREFIX });
  await queue.add('delivery', data, { jobId, attempts: 3 });
  await queue.close();
}

async function addDelivery(delivery: Delivery): Promise<void> {
  await addJob(delivery.webhookId, {
    webhookId: delivery.webhookId,
    timestamp: 1,
    receivedAt: 2,
    query: {},
    prediction: {
      ...samplePrediction('succeeded'),
      id: delivery.predictionId,
      status: delivery.status,
    },
  });
}

function ledgerOf(delivery: Delivery) {
  return [
    ledgerKeys.prediction(PREFIX, delivery.predictionId),
    ledgerKeys.lock(PREFIX, delivery.predictionId),
    ledgerKeys.delivery(PREFIX, delivery.webhookId),
  ];
}

/** beginDelivery-3 called as a worker calls it for `delivery`. */
function begin(delivery: Delivery, tryToken: string) {
  const [prediction, lock, progress] = ledgerOf(delivery) as [string, string, string];
  return client.beginDelivery(
    prediction,
    lock,
    progress,
    tryToken,
    LOCK_MS,
    RETENTION,
    delivery.status,
    TERMINAL.has(delivery.status) ? '1' : '0',
    delivery.webhookId,
    delivery.predictionId,
    ...(WANTED[delivery.status] ?? []),
  );
}

/** Every key, its expiry, and its content; stream entries without their (time-based) ids. */
async function snapshot(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await client.keys('*')).sort()) {
    const type = await client.type(key);
    const ttl = await client.pttl(key);
    let value: unknown;
    if (type === 'hash') value = await client.hgetall(key);
    else if (type === 'list') value = await client.lrange(key, 0, -1);
    else if (type === 'zset') value = await client.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'set') value = (await client.smembers(key)).sort();
    else if (type === 'stream') value = (await client.xrange(key, '-', '+')).map(([, f]) => f);
    else value = await client.get(key);
    out[key] = { type, value, expires: ttl > 0 };
  }
  return out;
}

/**
 * BullMQ's answer with the fetched job's fields (HGETALL's flat list) as an object: a restored
 * hash lists its fields in another order.
 */
function fieldsAsObject(answer: unknown): unknown {
  if (!Array.isArray(answer) || !Array.isArray(answer[0])) return answer;
  const [fields, ...rest] = answer as [string[], ...unknown[]];
  const job: Record<string, string> = {};
  for (let i = 0; i < fields.length - 1; i += 2) job[fields[i] as string] = fields[i + 1] as string;
  return [job, ...rest];
}

/** Saves every key, to run a case twice from the same state. */
async function save(): Promise<Array<[string, Buffer, number]>> {
  const keys = await client.keys('*');
  return Promise.all(
    keys.map(async (key) => {
      const dumped = (await client.dumpBuffer(key)) as Buffer;
      const ttl = await client.pttl(key);
      return [key, dumped, Math.max(ttl, 0)] as [string, Buffer, number];
    }),
  );
}

async function restore(saved: Array<[string, Buffer, number]>): Promise<void> {
  await client.flushall();
  for (const [key, dumped, ttl] of saved) await client.restore(key, ttl, dumped);
}

/**
 * Runs the two ways from the current state. `asBullmq` is BullMQ's script plus the ledger calls a
 * worker made around it; returns both ways' answers after checking that Redis agrees.
 */
async function both(
  asBullmq: () => Promise<{ bullmq: unknown; begun: unknown; finished: unknown }>,
  wrapped: () => Promise<unknown>,
) {
  const saved = await save();
  const expected = await asBullmq();
  const expectedState = await snapshot();
  await restore(saved);
  const raw = (await wrapped()) as unknown[];
  assert.deepEqual(await snapshot(), expectedState, 'the same Redis afterwards');
  assert.equal(raw[0], 'inlet');
  assert.deepEqual(fieldsAsObject(raw[3]), fieldsAsObject(expected.bullmq), "BullMQ's own answer");
  assert.deepEqual(raw[1], expected.begun, "beginDelivery-3's answer on the fetched job");
  assert.deepEqual(raw[2], expected.finished, "finishDelivery-3's answer");
  return raw;
}

const fetchActive = (tryToken: string) => () =>
  command('moveToActiveAndBegin')([...moveToActiveArgs('job-lock'), ...ledgerArgs(tryToken)]);

describe("BullMQ's scripts as wrapped", () => {
  it('read no key or argument past their own, so the ledger may add its after them', () => {
    assert.doesNotThrow(() => bullmqScript('moveToFinished', 14, 9));
    assert.doesNotThrow(() => bullmqScript('moveToActive', 11, 3));
    assert.doesNotThrow(() => bullmqScript('addStandardJob', 9, 3));
    assert.throws(() => bullmqScript('moveToFinished', 14, 8), /not the one inlet wraps/);
  });

  it('count a whole KEYS or ARGV, or an entry past the count, as reading past their own', () => {
    assert.ok(readsOnly('local a = KEYS[1] .. KEYS [9]', 'KEYS', 9));
    assert.ok(!readsOnly('local a = KEYS[10]', 'KEYS', 9));
    assert.ok(!readsOnly('for i = 1, #KEYS do end', 'KEYS', 9));
    assert.ok(!readsOnly('return unpack(ARGV)', 'ARGV', 3));
    assert.ok(!readsOnly('local i = 2; return ARGV[i]', 'ARGV', 3));
    assert.ok(readsOnly('return ARGV[3] .. KEYS[12]', 'ARGV', 3));
  });
});

describe('moveToActiveAndBegin-11', () => {
  const cases: Array<{
    name: string;
    craft?: (d: Delivery) => Promise<unknown>;
    status: string;
    answer: string[];
  }> = [
    {
      name: 'a fresh terminal delivery runs',
      status: 'succeeded',
      answer: ['run', 'succeeded', 'a', 'b'],
    },
    { name: 'a fresh non-terminal delivery runs', status: 'processing', answer: ['run', '', 'a'] },
    {
      name: 'a prediction busy on another try waits',
      status: 'succeeded',
      craft: (d) => client.set(ledgerOf(d)[1] as string, 'other', 'PX', LOCK_MS),
      answer: ['busy', '1'],
    },
    {
      name: 'a status after another recorded terminal one is skipped',
      status: 'succeeded',
      craft: (d) => client.hset(ledgerOf(d)[0] as string, 'status', 'failed'),
      answer: ['skip', 'failed'],
    },
    {
      name: 'every wanted processor done: nothing to run',
      status: 'succeeded',
      craft: (d) =>
        client.hset(ledgerOf(d)[0] as string, 'status', 'succeeded', 'done:a', 'x', 'done:b', 'y'),
      answer: ['done', 'succeeded'],
    },
    { name: 'a status no processor wants is done', status: 'starting', answer: ['done', ''] },
  ];
  for (const c of cases) {
    it(`${c.name}, as BullMQ's fetch and beginDelivery-3 do`, async () => {
      const delivery = { webhookId: 'msg_1', predictionId: 'p1', status: c.status };
      await addDelivery(delivery);
      await addDelivery({ webhookId: 'msg_2', predictionId: 'p2', status: 'processing' });
      await c.craft?.(delivery);
      const raw = await both(async () => {
        const fetched = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
        return { bullmq: fetched, begun: await begin(delivery, 'try-1'), finished: null };
      }, fetchActive('try-1'));
      assert.deepEqual(raw[1], c.answer);
      assert.equal((raw[3] as unknown[])[1], 'msg_1', 'the oldest job first');
    });
  }

  it('a delivery stored by the ingest is read from its fields and job id, not its data', async () => {
    // As storeDelivery-11 stores it: `#` before a numeric webhook id, the prediction named in
    // fields. The data says nothing here, so only the fields can have been read.
    const delivery = { webhookId: '12', predictionId: 'p12', status: 'succeeded' };
    await addJob('#12', { unrelated: true });
    await client.hset(queueKey('#12'), 'inlet:prediction', 'p12', 'inlet:status', 'succeeded');
    const raw = await both(async () => {
      const fetched = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
      return { bullmq: fetched, begun: await begin(delivery, 'try-1'), finished: null };
    }, fetchActive('try-1'));
    assert.deepEqual(raw[1], ['run', 'succeeded', 'a', 'b']);
    assert.ok(await client.exists(ledgerKeys.lock(PREFIX, 'p12')), 'the lock of p12 taken');
  });

  it('a job that is not a delivery comes back without a decision, the ledger untouched', async () => {
    await addJob('plain', { hello: 'world' });
    const raw = await both(async () => {
      const fetched = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
      return { bullmq: fetched, begun: null, finished: null };
    }, fetchActive('try-1'));
    assert.equal((raw[3] as unknown[])[1], 'plain');
    assert.deepEqual(await client.keys(`${PREFIX}:prediction:*`), []);
  });

  for (const status of [
    'exploded',
    'Succeeded',
    '',
    'starting=["1","a"]\nsucceeded',
    'succeeded ',
  ]) {
    it(`a status it does not know (${JSON.stringify(status)}) comes back without a decision`, async () => {
      await addDelivery({ webhookId: 'msg_1', predictionId: 'p1', status });
      await both(async () => {
        const fetched = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
        return { bullmq: fetched, begun: null, finished: null };
      }, fetchActive('try-1'));
      assert.deepEqual(await client.keys(`${PREFIX}:prediction:*`), []);
    });
  }

  it('processor names reach the ledger as they are, whatever bytes they hold', async () => {
    const names = ['a\nsucceeded"]', 'say "hi"', 'ünï', '=', 'back\\slash', ']]--', '\u0000 7'];
    await addDelivery({ webhookId: 'msg_1', predictionId: 'p1', status: 'succeeded' });
    const script = moveToActiveAndBegin11({ ...SETTINGS, wanted: new Map([['succeeded', names]]) });
    defineScripts(client, { ...script, name: 'oddNamesFetch' });
    const [, begun] = (await command('oddNamesFetch')([
      ...moveToActiveArgs('job-lock'),
      ...ledgerArgs('try-1'),
    ])) as [string, unknown];
    assert.deepEqual(begun, ['run', 'succeeded', ...names]);
  });

  it('writes a Lua string byte by byte where a byte could end it or escape', () => {
    assert.equal(luaString('done:a-1/b.c'), '"done:a-1/b.c"');
    assert.equal(luaString('"\\\n'), '"\\034\\092\\010"');
    assert.equal(luaString('é'), '"\\195\\169"');
  });

  it('an empty queue: BullMQ answers no job, and nothing is decided', async () => {
    await addDelivery({ webhookId: 'msg_1', predictionId: 'p1', status: 'succeeded' });
    await client.del(queueKey('wait'));
    const raw = await both(async () => {
      const fetched = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
      return { bullmq: fetched, begun: null, finished: null };
    }, fetchActive('try-1'));
    assert.deepEqual(raw[3], [0, 0, 0, 0]);
  });

  it("without the ledger's arguments it is BullMQ's script, answer and all", async () => {
    await addDelivery({ webhookId: 'msg_1', predictionId: 'p1', status: 'succeeded' });
    const saved = await save();
    const own = await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
    const state = await snapshot();
    await restore(saved);
    const wrapped = await command('moveToActiveAndBegin')(moveToActiveArgs('job-lock'));
    assert.deepEqual(fieldsAsObject(wrapped), fieldsAsObject(own));
    assert.deepEqual(await snapshot(), state);
  });
});

describe('moveToFinishedAndBegin-14', () => {
  const first = { webhookId: 'msg_1', predictionId: 'p1', status: 'succeeded' };
  const second = { webhookId: 'msg_2', predictionId: 'p2', status: 'succeeded' };

  /** `first` fetched and begun as a worker does; `second` waiting behind it. */
  async function running(): Promise<void> {
    await addDelivery(first);
    await addDelivery(second);
    await command('bullmq_moveToActive')(moveToActiveArgs('job-lock'));
    assert.deepEqual(await begin(first, 'try-1'), ['run', 'succeeded', 'a', 'b']);
  }

  /** finishDelivery-3's arguments after the ledger's: `first` ends, `processor` last. */
  const finishArgs = (processor: string) => [
    first.predictionId,
    first.webhookId,
    'try-1',
    processor,
    '1',
  ];

  function finishAlone(processor: string) {
    const [prediction, lock, progress] = ledgerOf(first) as [string, string, string];
    return client.finishDelivery(
      prediction,
      lock,
      progress,
      'try-1',
      processor,
      '1',
      first.webhookId,
      RETENTION,
    );
  }

  /**
   * Completes `first` both ways: its finish with `processor` last (none when undefined), BullMQ's
   * completion under `jobLock`, then begin on the next job when BullMQ hands one over.
   */
  function complete(processor: string | undefined, jobLock = 'job-lock') {
    return both(
      async () => {
        const finished = processor === undefined ? null : await finishAlone(processor);
        const bullmq = await command('bullmq_moveToFinished')(completeArgs('msg_1', jobLock));
        const next = Array.isArray(bullmq) && Array.isArray(bullmq[0]);
        return { bullmq, begun: next ? await begin(second, 'try-2') : null, finished };
      },
      () =>
        command('moveToFinishedAndBegin')([
          ...completeArgs('msg_1', jobLock),
          ...ledgerArgs('try-2'),
          ...(processor === undefined ? [] : finishArgs(processor)),
        ]),
    );
  }

  it('ends the delivery, completes its job and begins the next, as the three calls did', async () => {
    await running();
    const raw = await complete('b');
    assert.equal(raw[2], 1);
    assert.deepEqual(raw[1], ['run', 'succeeded', 'a', 'b']);
    assert.equal((raw[3] as unknown[])[1], 'msg_2');
    assert.equal(await client.hget(ledgerOf(first)[0] as string, 'done:b'), 'msg_1 try-1');
    assert.equal(await client.get(ledgerOf(first)[1] as string), null, 'the lock given back');
  });

  it('reports a terminal processor another try had recorded, as finishDelivery-3 does', async () => {
    await running();
    await client.hset(ledgerOf(first)[0] as string, 'done:b', 'msg_9 try-9');
    assert.equal((await complete('b'))[2], 0);
  });

  it("ends the delivery even when BullMQ refuses the completion (the job's lock is another's)", async () => {
    await running();
    const raw = await complete('', 'not-the-lock');
    assert.equal(raw[2], 1);
    assert.ok(typeof raw[3] === 'number' && raw[3] < 0, `BullMQ's error code, got ${raw[3]}`);
    assert.equal(await client.get(ledgerOf(first)[1] as string), null, 'the lock given back');
  });

  it('without a delivery to end, only completes and begins', async () => {
    await running();
    const raw = await complete(undefined);
    assert.equal(raw[2], null);
    assert.deepEqual(raw[1], ['run', 'succeeded', 'a', 'b']);
  });
});
