import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type CliProcess, jsonLines, runCli, spawnCli, stopCli } from '../support/cli.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

const listeningPids = (child: CliProcess) =>
  jsonLines(child.stdoutText())
    .filter((line) => line.msg === 'ingest listening')
    .map((line) => Number(line.pid));

const deliveryPids = (child: CliProcess) =>
  jsonLines(child.stdoutText())
    .filter((line) => line.msg === 'delivery' && line.outcome === 'accepted')
    .map((line) => Number(line.pid));

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('inlet ingest --processes 2', () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let child: CliProcess;
  let port: number;

  before(async () => {
    redis = await TestRedis.start();
    port = await freePort();
    child = spawnCli(['ingest', '--processes', '2'], {
      env: {
        REDIS_URL: redis.url,
        REPLICATE_WEBHOOK_SECRET: secret,
        PORT: String(port),
        HOST: '127.0.0.1',
      },
    });
    await waitFor('two ingest processes listening', () => {
      if (child.exitCode !== null) throw new Error(`inlet ingest exited: ${child.stderrText()}`);
      return listeningPids(child).length >= 2;
    });
  });

  after(async () => {
    for (const pid of listeningPids(child)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (child.exitCode === null) child.kill('SIGKILL');
    await redis.destroy();
  });

  const post = async () => {
    const body = JSON.stringify(samplePrediction('succeeded'));
    const response = await fetch(`http://127.0.0.1:${port}/webhooks/replicate`, {
      method: 'POST',
      headers: { ...signedHeaders(secret, body), connection: 'close' },
      body,
    });
    return response.status;
  };

  it('accepts deliveries on the shared port and counts them all in /metrics', async () => {
    const pids = listeningPids(child);
    assert.equal(new Set(pids).size, 2, 'two distinct processes');
    const statuses = await Promise.all(Array.from({ length: 20 }, post));
    assert.deepEqual(statuses, Array(20).fill(202));
    const client = redis.client();
    assert.equal(await client.llen('inlet:deliveries:wait'), 20);
    client.disconnect();

    // Both processes took deliveries (each logs its own), so the total below is a sum.
    await waitFor('the delivery log lines', () => deliveryPids(child).length === 20);
    assert.equal(new Set(deliveryPids(child)).size, 2, 'deliveries reached both processes');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    // Counted in two processes, summed by the primary.
    assert.match(metrics, /^inlet_deliveries_total\{outcome="accepted"\} 20$/m);
    // Read from Redis by each process: the same figure, not twice it.
    assert.match(metrics, /^inlet_queue_jobs\{queue="deliveries",state="waiting"\} 20$/m);
    assert.match(metrics, /^inlet_redis_up 1$/m);
  });

  it('replaces an ingest process that was killed', async () => {
    const [victim] = listeningPids(child);
    assert.ok(victim);
    process.kill(victim, 'SIGKILL');
    await waitFor('a third ingest process', () => listeningPids(child).length >= 3, {
      timeoutMs: 30_000,
    });
    assert.ok(
      jsonLines(child.stdoutText()).some(
        (line) =>
          line.msg === 'ingest process exited; starting another' && line.signal === 'SIGKILL',
      ),
    );
    const statuses = await Promise.all(Array.from({ length: 10 }, post));
    assert.deepEqual(statuses, Array(10).fill(202));
  });

  it('drains every process on SIGTERM and exits 0', async () => {
    const live = listeningPids(child).filter(isAlive);
    assert.equal(live.length, 2);
    const code = await stopCli(child, 'SIGTERM');
    assert.equal(code, 0, child.stderrText());
    const stopped = jsonLines(child.stdoutText()).filter((line) => line.msg === 'ingest stopped');
    assert.deepEqual(new Set(stopped.map((line) => Number(line.pid))), new Set(live));
    await waitFor('the workers to be gone', () => live.every((pid) => !isAlive(pid)));
  });
});

describe('INLET_INGEST_PROCESSES', () => {
  it('refuses a value that is not a count or auto, in one line', async () => {
    const result = await runCli(['ingest'], {
      env: {
        INLET_INGEST_PROCESSES: 'many',
        REDIS_URL: 'redis://127.0.0.1:1',
        REPLICATE_WEBHOOK_SECRET: makeSecret(),
      },
    });
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /INLET_INGEST_PROCESSES: expected a whole number from 1 to 256, or auto/,
    );
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  });
});
