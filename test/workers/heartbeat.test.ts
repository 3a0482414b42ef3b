import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { healthcheckCommand } from '../../src/cli/healthcheck.js';
import {
  HEARTBEAT_INTERVAL_MS,
  heartbeatProblem,
  WorkerHeartbeat,
} from '../../src/workers/heartbeat.js';
import { parseCommandLine, runCli, spawnCli, stopCli } from '../support/cli.js';
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
    // Waiting polls the file in this process, through the function `inlet healthcheck` runs;
    // each state, once reached, is then checked by one real `inlet healthcheck` process (its exit
    // code and line are what a container's healthcheck sees). A process per poll cost 12.
    const check = (maxAge = 10_000) =>
      runCli(['healthcheck', file, '--max-age', String(maxAge)], { timeoutMs: 15_000 });
    const fresh = async (maxAge = 10_000) => (await heartbeatProblem(file, maxAge)) === undefined;
    const worker = spawnCli(['worker', '--heartbeat-file', file], {
      env: { REDIS_URL: redis.url, INLET_PREFIX: 'heartbeat' },
    });
    try {
      assert.equal(await fresh(), false, 'not healthy before the worker has connected');
      await worker.waitForLog((line) => line.msg === 'worker ready');
      await waitFor('healthy', () => fresh());
      const healthy = await check();
      assert.equal(healthy.code, 0, healthy.stderr);
      assert.equal(healthy.stderr, '');

      // Older than a beat's interval and a second: a worker still beating never gets there.
      const stale = HEARTBEAT_INTERVAL_MS + 1_000;
      await redis.stop();
      await waitFor('unhealthy without Redis', async () => !(await fresh(stale)));
      const unhealthy = await check(stale);
      assert.equal(unhealthy.code, 1);
      assert.match(
        unhealthy.stderr,
        /^inlet: heartbeat \d+ s old: the worker has lost Redis or is stuck\n$/,
      );

      await redis.start();
      await waitFor('healthy again', () => fresh(1_000));
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
    const bad = await parseCommandLine(healthcheckCommand(), ['x', '--max-age', '0']);
    assert.notEqual(bad.code, 0);
    assert.equal(
      bad.stderr,
      "error: option '--max-age <ms>' argument '0' is invalid. expected a positive number of milliseconds\n",
    );
    const missing = await parseCommandLine(healthcheckCommand(), []);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr, "error: missing required argument 'file'\n");
  });
});
