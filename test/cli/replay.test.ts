import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Queue } from 'bullmq';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { loadConfig } from '../../src/core/config.js';
import { QUEUE_NAME } from '../../src/core/job.js';
import { createLogger } from '../../src/core/logger.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { runCli } from '../support/cli.js';
import { makeSecret, postSigned, samplePrediction } from '../support/deliveries.js';
import { startReadyIngest } from '../support/ingest.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

describe('inlet replay', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let worker: InletWorker;
  let queue: Queue;
  let env: Record<string, string>;
  const secret = makeSecret();
  const runs: string[] = [];
  let failing = true;

  before(async () => {
    redis = await TestRedis.start();
    env = { REDIS_URL: redis.url, INLET_PREFIX: 'replay-test', REPLICATE_WEBHOOK_SECRET: secret };
    const config = loadConfig({ ...env, PORT: '0', HOST: '127.0.0.1', INLET_ATTEMPTS: '1' });
    const logger = createLogger({ level: 'silent' });
    ingest = await startReadyIngest({ config, logger, drainTimeoutMs: 1000 });
    worker = await startWorker({
      config,
      logger,
      processors: [
        {
          name: 'flaky',
          statuses: ['succeeded'],
          handle(prediction) {
            if (failing) throw new bullmq.UnrecoverableError('the bucket is not there');
            runs.push(prediction.id);
          },
        },
      ],
    });
    queue = new bullmq.Queue(QUEUE_NAME, { connection: { url: redis.url }, prefix: 'replay-test' });
    const url = `${ingest.url}/webhooks/replicate`;
    // Posted from here, not with `inlet send` (tested in send.test.ts): a process each cost
    // about 0.4 s of CPU for set-up only.
    for (const id of ['pred-a', 'pred-b', 'pred-c']) {
      const sent = await postSigned(url, secret, samplePrediction('succeeded', id));
      assert.equal(sent.status, 202);
    }
    await waitFor('3 dead letters', async () => (await queue.getFailedCount()) === 3);
  });

  after(async () => {
    await queue?.close();
    await worker?.close();
    await ingest?.close();
    await redis?.destroy();
  });

  test('--dry-run lists the dead letters with their error and moves nothing', async () => {
    const result = await runCli(['replay', '--all', '--dry-run'], { env });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 4);
    for (const id of ['pred-a', 'pred-b', 'pred-c']) {
      assert.ok(
        lines.some(
          (l) =>
            l.includes(`prediction ${id}`) &&
            l.includes('failed flaky') &&
            l.includes('the bucket is not there'),
        ),
      );
    }
    assert.equal(lines.at(-1), 'dry run: would re-drive 3 dead-lettered deliveries; nothing moved');
    assert.equal(await queue.getFailedCount(), 3);
  });

  test('--prediction re-drives that prediction only; the fixed processor runs', async () => {
    failing = false;
    const result = await runCli(['replay', '--prediction', 'pred-b'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 're-drove 1 of 1 dead-lettered delivery for prediction pred-b\n');
    await waitFor('pred-b re-run', () => runs.includes('pred-b'));
    assert.equal(await queue.getFailedCount(), 2);
  });

  test('--all re-drives the rest; then there is nothing left', async () => {
    const result = await runCli(['replay', '--all'], { env });
    assert.equal(result.stdout, 're-drove 2 of 2 dead-lettered deliveries\n');
    await waitFor('3 runs', () => runs.length === 3);
    assert.deepEqual([...runs].sort(), ['pred-a', 'pred-b', 'pred-c']);
    const again = await runCli(['replay', '--all'], { env });
    assert.equal(again.stdout, 'no dead-lettered deliveries\n');
  });

  test('neither or both of --all and --prediction: one line, exit 2', async () => {
    for (const args of [['replay'], ['replay', '--all', '--prediction', 'x']]) {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2);
      assert.equal(
        result.stderr,
        'inlet: say what to re-drive: --all, or --prediction ID (not both)\n',
      );
    }
  });

  test('no Redis: one line naming REDIS_URL, exit 2, instead of waiting', async () => {
    const port = await freePort();
    const result = await runCli(['replay', '--all'], {
      env: { REDIS_URL: `redis://:pw@127.0.0.1:${port}` },
    });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^inlet: Redis redis:\/\/…@127\.0\.0\.1:\d+ \(REDIS_URL\)\ninlet: cannot reach Redis at redis:\/\/…@127\.0\.0\.1:\d+: set REDIS_URL/,
    );
  });
});
