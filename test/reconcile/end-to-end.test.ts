import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { loadConfig } from '../../src/core/config.js';
import type { OutputManifest } from '../../src/processors/keep-outputs.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { CLI } from '../support/cli.js';
import { FakeReplicate } from '../support/fake-replicate.js';
import { FileServer } from '../support/file-server.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';
import { FAST, WorkerProcess } from '../workers/fixtures/harness.js';
import { predictionAt } from './helpers.js';

const KEEP_OUTPUTS = join(CLI, '..', '..', 'processors', 'keep-outputs.js');

let redis: TestRedis;
let fake: FakeReplicate;
let files: FileServer;
let dir: string;
before(async () => {
  redis = await TestRedis.start();
  fake = await FakeReplicate.start();
  files = await FileServer.start();
  dir = mkdtempSync(join(tmpdir(), 'inlet-e2e-outputs-'));
});
after(async () => {
  await files.close();
  await fake.close();
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('a prediction whose webhooks were all lost, end to end', () => {
  it('is reconciled, and a worker running the built-in keep-outputs (by path) stores its files', {
    timeout: 60_000,
  }, async () => {
    const prefix = `e2e${process.pid}`;
    const image = randomBytes(200_000);
    const prediction = predictionAt('succeeded', 20);
    prediction.output = [files.add(`/${prediction.id}/out-0.webp`, image)];
    fake.put(prediction);
    const env = {
      ...FAST,
      REDIS_URL: redis.url,
      INLET_PREFIX: prefix,
      INLET_PROCESSORS: KEEP_OUTPUTS,
      INLET_OUTPUT_STORE_URL: pathToFileURL(dir).href,
    };
    const worker = await WorkerProcess.start(env);
    const reconciler = new Reconciler(
      loadConfig({ ...env, REPLICATE_API_TOKEN: fake.token, REPLICATE_API_BASE_URL: fake.url }),
      pino({ level: 'silent' }),
    );
    try {
      const report = await reconciler.pass();
      assert.equal(report.reconciled.length, 1);
      const manifestPath = join(dir, prediction.id, 'manifest.json');
      const manifest = async () =>
        existsSync(manifestPath)
          ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as OutputManifest)
          : undefined;
      await waitFor('outputs stored', async () => Boolean((await manifest())?.storedAt), {
        timeoutMs: 20_000,
      });
      assert.ok(readFileSync(join(dir, prediction.id, '0-out-0.webp')).equals(image));
      const client = redis.client();
      await waitFor(
        'the completion-to-stored figure',
        async () => (await client.hget(`${prefix}:reconcile:outputs-stored`, 'count')) === '1',
        { timeoutMs: 10_000 },
      );
      client.disconnect();
      assert.equal(files.totalHits, 1);
    } finally {
      worker.kill('SIGTERM');
      await worker.exited;
      await reconciler.close();
    }
  });
});
