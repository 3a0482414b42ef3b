import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { baseEnv, CLI, ROOT, runCli } from '../support/cli.js';
import { makeSecret, samplePrediction } from '../support/deliveries.js';
import { startReadyIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/** send --data, inspect, replay --rerun, .env, the dev Redis record, init and --version. */
describe('inlet in your own project', () => {
  let redis: TestRedis;
  let ingest: IngestServer;
  let worker: InletWorker;
  let env: Record<string, string>;
  let url: string;
  const dir = mkdtempSync(join(tmpdir(), 'inlet-cli-'));
  const runs: string[] = [];

  before(async () => {
    redis = await TestRedis.start();
    env = {
      REDIS_URL: redis.url,
      INLET_PREFIX: 'own-project',
      REPLICATE_WEBHOOK_SECRET: makeSecret(),
    };
    const config = loadConfig({ ...env, PORT: '0', HOST: '127.0.0.1' });
    const logger = createLogger({ level: 'silent' });
    ingest = await startReadyIngest({ config, logger, drainTimeoutMs: 1000 });
    worker = await startWorker({
      config,
      logger,
      processors: ['count', 'other'].map((name) => ({
        name,
        statuses: ['succeeded' as const],
        handle(prediction: { id: string; output: unknown }) {
          runs.push(`${name}:${prediction.id}:${JSON.stringify(prediction.output)}`);
        },
      })),
    });
    url = `${ingest.url}/webhooks/replicate`;
  });

  after(async () => {
    await worker?.close();
    await ingest?.close();
    await redis?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('send --data delivers the given prediction as written; inspect shows it', async () => {
    const prediction = { ...samplePrediction('succeeded', 'own-a'), output: { text: 'mine' } };
    const file = join(dir, 'own-a.json');
    writeFileSync(file, JSON.stringify([prediction]));
    const sent = await runCli(['send', '--data', file, '--url', url, '--json'], { env });
    assert.equal(sent.code, 0, sent.stderr);
    const webhookId = (JSON.parse(sent.stdout) as { webhookId: string }).webhookId;
    await waitFor(
      'other ran on own-a',
      () => runs.filter((r) => r.startsWith('other:own-a')).length === 1,
    );
    assert.ok(runs.includes('count:own-a:{"text":"mine"}'));

    const byPrediction = await runCli(['inspect', 'own-a'], { env });
    assert.equal(byPrediction.code, 0, byPrediction.stderr);
    assert.match(byPrediction.stderr, /^inlet: Redis redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\)\n$/);
    assert.match(byPrediction.stdout, /^prediction own-a\n {2}ledger: terminal state succeeded/);
    assert.match(byPrediction.stdout, new RegExp(`${webhookId} {2}succeeded {2}completed`));
    assert.match(byPrediction.stdout, /count: succeeded \(on msg_/);
    const byWebhook = await runCli(['inspect', webhookId, '--json'], { env });
    const json = JSON.parse(byWebhook.stdout) as { predictionId: string; processors: object };
    assert.equal(json.predictionId, 'own-a');
    assert.deepEqual(Object.keys(json.processors).sort(), ['count', 'other']);
  });

  test('replay --rerun runs the chosen processor again, once per rerun; --dry-run changes nothing', async () => {
    await waitFor('count ran on own-a', () => runs.includes('count:own-a:{"text":"mine"}'));
    const count = (name: string) => runs.filter((r) => r.startsWith(`${name}:own-a`)).length;
    const before = count('count');
    const args = ['replay', '--prediction', 'own-a', '--processor', 'count', '--rerun'];
    const dry = await runCli([...args, '--dry-run'], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^dry run: would queue delivery inlet-rerun-own-a-1: prediction own-a/,
    );
    assert.match(dry.stdout, /would clear the done mark of count/);
    const done = await runCli(args, { env });
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /^queued delivery inlet-rerun-own-a-1/);
    await waitFor('the first rerun', () => count('count') === before + 1);
    const again = await runCli(args, { env });
    assert.match(again.stdout, /^queued delivery inlet-rerun-own-a-2/);
    await waitFor('the second rerun', () => count('count') === before + 2);
    assert.equal(count('other'), 1, 'a processor not named is not run again');
  });

  test('send --data - reads the prediction from stdin', async () => {
    const prediction = { ...samplePrediction('succeeded', 'own-stdin'), output: ['x'] };
    // Not spawnSync: the ingest answering it runs in this process.
    const child = spawn(process.execPath, [CLI, 'send', '--data', '-', '--url', url], {
      env: baseEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdin.end(JSON.stringify(prediction));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    assert.match(stdout, /1 accepted/);
    await waitFor('count ran on own-stdin', () => runs.includes('count:own-stdin:["x"]'));
  });

  test('send --data refuses what is not a prediction, in one line', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify([{ id: 'x', status: 'succeeded' }, { id: 'y' }]));
    const result = await runCli(['send', '--data', file, '--url', url], { env });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^inlet: --data: .*bad\.json\[1\] \(y\) needs a "status"/);
    const clash = await runCli(['send', '--data', file, '--count', '2'], { env });
    assert.equal(clash.stderr, 'inlet: --data gives the predictions: leave out --count\n');
  });

  test('finds the Redis of an inlet dev running in the folder, and reads .env', async () => {
    const project = join(dir, 'project');
    mkdirSync(join(project, '.inlet'), { recursive: true });
    // This test's own pid stands for the running inlet dev.
    writeFileSync(
      join(project, '.inlet', 'redis.json'),
      JSON.stringify({ url: redis.url, devPid: process.pid }),
    );
    writeFileSync(join(project, '.env'), 'INLET_PREFIX=own-project\nLOG_LEVEL=warn\n');
    const result = await runCli(['inspect', 'own-a'], { cwd: project, env: { LOG_LEVEL: 'info' } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^inlet: read INLET_PREFIX from .*\.env \(set variables win/);
    assert.match(
      result.stderr,
      new RegExp(
        `inlet: Redis redis://127\\.0\\.0\\.1:${redis.port} \\(the private Redis of the inlet dev running here \\(pid ${process.pid}\\)\\)`,
      ),
    );
  });

  test('init writes a starter once and never overwrites', async () => {
    const project = join(dir, 'init');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{"name":"app"}\n');
    const first = await runCli(['init'], { cwd: project });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /set "type": "module" in package\.json/);
    for (const file of [
      'processors/save-prediction.ts',
      'processors/save-prediction.test.ts',
      'tsconfig.json',
      '.env.example',
      'docker-compose.override.yml',
    ]) {
      assert.ok(existsSync(join(project, file)), file);
    }
    assert.equal(JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')).type, 'module');
    writeFileSync(join(project, 'tsconfig.json'), '{"mine":true}\n');
    const second = await runCli(['init'], { cwd: project });
    assert.match(second.stdout, /kept tsconfig\.json \(exists\)/);
    assert.equal(readFileSync(join(project, 'tsconfig.json'), 'utf8'), '{"mine":true}\n');
  });

  test('inlet ingest reports a taken port in the one line inlet dev uses', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const result = await runCli(['ingest'], {
        env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
      });
      assert.equal(result.code, 2);
      assert.equal(
        result.stderr,
        `inlet: port ${port} is in use: stop what listens there or set PORT\n`,
      );
    } finally {
      taken.close();
    }
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const result = await runCli(['--version']);
    assert.equal(result.stdout, `${version}\n`);
  });
});
