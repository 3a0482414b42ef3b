import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { heartbeatProblem, WorkerHeartbeat } from '../../src/workers/heartbeat.js';
import { runCli, spawnCli, stopCli } from '../support/cli.js';
import { TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'inlet-heartbeat-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('WorkerHeartbeat', () => {
  test('fresh only while alive; stale once it stops beating; gone after stop', async () => {
    const file = join(dir, 'unit.heartbeat');
    let alive = false;
    const heartbeat = new WorkerHeartbeat(file, () => alive, 10);
    try {
      assert.match((await heartbeatProblem(file, 200)) ?? '', /no heartbeat/);
      alive = true;
      await waitFor('fresh', async () => (await heartbeatProblem(file, 200)) === undefined);
      alive = false;
      await waitFor('stale', async () =>
        /lost Redis or is stuck/.test((await heartbeatProblem(file, 200)) ?? ''),
      );
      alive = true;
      await waitFor('fresh again', async () => (await heartbeatProblem(file, 200)) === undefined);
    } finally {
      heartbeat.stop();
    }
    assert.equal(existsSync(file), false);
  });
});

describe('inlet worker --heartbeat-file and inlet healthcheck', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis?.destroy();
  });

  test('healthy while connected, unhealthy while Redis is down, and after the worker stops', async () => {
    const file = join(dir, 'worker.heartbeat');
    const check = (maxAge = 10_000) =>
      runCli(['healthcheck', file, '--max-age', String(maxAge)], { timeoutMs: 15_000 });
    const worker = spawnCli(['worker', '--heartbeat-file', file], {
      env: { REDIS_URL: redis.url, INLET_PREFIX: 'heartbeat' },
    });
    try {
      const before = await check();
      assert.equal(before.code, 1, 'not healthy before the worker has connected');
      await worker.waitForLog((line) => line.msg === 'worker ready');
      // Each check is a process (about 0.15 s of CPU): a few a second, not back to back.
      const SPAWNING = { intervalMs: 250 };
      await waitFor('healthy', async () => (await check()).code === 0, SPAWNING);

      await redis.stop();
      await waitFor(
        'unhealthy without Redis',
        async () => {
          const result = await check(1_000);
          return result.code === 1 && /lost Redis or is stuck/.test(result.stderr);
        },
        SPAWNING,
      );
      await redis.start();
      await waitFor('healthy again', async () => (await check(1_000)).code === 0, SPAWNING);
    } finally {
      assert.equal(await stopCli(worker, 'SIGTERM'), 0, worker.stderrText());
    }
    const stopped = await check();
    assert.equal(stopped.code, 1);
    assert.equal(
      stopped.stderr,
      `inlet: no heartbeat at ${file}: the worker is not running or not connected yet\n`,
    );
  });
});

describe('inlet healthcheck usage', () => {
  test('a bad --max-age or a missing file argument: one line, non-zero exit', async () => {
    const bad = await runCli(['healthcheck', 'x', '--max-age', '0']);
    assert.notEqual(bad.code, 0);
    assert.equal(
      bad.stderr,
      "error: option '--max-age <ms>' argument '0' is invalid. expected a positive number of milliseconds\n",
    );
    const missing = await runCli(['healthcheck']);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr, "error: missing required argument 'file'\n");
  });
});
