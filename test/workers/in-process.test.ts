import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/core/config.js';
import { defineProcessor, type ProcessorContext } from '../../src/index.js';
import { startWorker } from '../../src/workers/worker.js';
import { samplePrediction } from '../support/deliveries.js';
import { TestRedis } from '../support/redis-server.js';
import { FAST, WorkerCluster } from './fixtures/harness.js';

/** `startWorker` as `inlet dev` uses it: in this process, with processors passed in. */
describe('startWorker in process', () => {
  let redis: TestRedis;
  let cluster: WorkerCluster;
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write: (chunk, _encoding, done) => {
        for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    }),
  );

  before(async () => {
    redis = await TestRedis.start();
    cluster = await WorkerCluster.start(redis, {});
  });
  after(async () => {
    await cluster.stop();
    await redis.destroy();
  });

  it('gives processors the delivery, ids on every log line, and closes cleanly', async () => {
    const seen: ProcessorContext[] = [];
    const capture = defineProcessor<{ prompt: string }, string[]>({
      name: 'capture',
      statuses: ['succeeded'],
      handle(prediction, ctx) {
        assert.equal(typeof prediction.input.prompt, 'string');
        seen.push(ctx);
        ctx.log.info('captured');
      },
    });
    const config = loadConfig({ ...FAST, REDIS_URL: redis.url, INLET_PREFIX: cluster.prefix });
    const worker = await startWorker({ config, logger, processors: [capture] });
    try {
      const prediction = samplePrediction('succeeded');
      const id = await cluster.deliver(prediction);
      await cluster.settle([id]);
      assert.equal(seen.length, 1);
      const [ctx] = seen;
      assert.equal(ctx?.webhookId, id);
      assert.equal(ctx?.attempt, 1);
      assert.deepEqual(ctx?.query, {});
      assert.equal(ctx?.signal.aborted, false);
      const captured = lines.find((l) => l.msg === 'captured');
      assert.deepEqual(
        [captured?.webhookId, captured?.predictionId, captured?.processor],
        [id, prediction.id, 'capture'],
      );
      const about = lines.filter((l) => l.webhookId !== undefined || l.predictionId !== undefined);
      assert.ok(about.length >= 3);
      for (const line of about) {
        assert.equal(line.webhookId, id, `webhookId on "${line.msg}"`);
        assert.equal(line.predictionId, prediction.id, `predictionId on "${line.msg}"`);
      }
    } finally {
      await worker.close();
      await worker.close(); // twice is harmless
    }
    assert.ok(lines.some((l) => l.msg === 'worker stopped'));
  });

  it('times out a hung processor: aborts ctx.signal, fails the run, abandons one that ignores it', async () => {
    let aborted: unknown;
    const hangs = defineProcessor({
      name: 'hangs',
      statuses: ['succeeded'],
      timeoutMs: 200,
      handle: (_prediction, ctx) =>
        new Promise<void>((_, reject) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
            reject(new Error('This operation was aborted'));
          });
        }),
    });
    const deaf = defineProcessor({
      name: 'deaf',
      statuses: ['failed'],
      handle: () => new Promise<void>(() => undefined), // never settles, ignores the signal
    });
    const config = loadConfig({
      ...FAST,
      INLET_ATTEMPTS: '1',
      INLET_PROCESSOR_TIMEOUT_MS: '200',
      REDIS_URL: redis.url,
      INLET_PREFIX: cluster.prefix,
    });
    const worker = await startWorker({ config, logger, processors: [hangs, deaf] });
    try {
      const first = await cluster.deliver(samplePrediction('succeeded'));
      const second = await cluster.deliver(samplePrediction('failed'));
      await cluster.settle([first, second], 'failed');
      assert.equal((aborted as Error).name, 'ProcessorTimeoutError');
      assert.equal(
        (await cluster.job(first)).failedReason,
        'hangs: timed out after 200 ms (This operation was aborted)',
      );
      assert.equal(
        (await cluster.job(second)).failedReason,
        'deaf: timed out after 200 ms and ignored its aborted signal',
      );
    } finally {
      await worker.close();
    }
  });

  it('refuses a ledger retention shorter than the dead-letter retention', async () => {
    const config = loadConfig({
      REDIS_URL: redis.url,
      INLET_DEAD_LETTER_RETENTION_SECONDS: '86400',
      INLET_LEDGER_RETENTION_SECONDS: '3600',
    });
    await assert.rejects(
      startWorker({ config, logger, processors: [] }),
      /INLET_PROCESSORS: no processors to run/,
    );
    const capture = defineProcessor({ name: 'x', handle() {} });
    await assert.rejects(
      startWorker({ config, logger, processors: [capture] }),
      /INLET_LEDGER_RETENTION_SECONDS: expected at least/,
    );
  });
});
