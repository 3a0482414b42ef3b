import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Queue } from 'bullmq';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { QUEUE_NAME } from '../../src/core/job.js';
import { isTerminal, type PredictionStatus } from '../../src/core/prediction.js';
import { type CliProcess, jsonLines, runCli, spawnCli, stopCli } from '../support/cli.js';
import { makeSecret } from '../support/deliveries.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/**
 * What the README promises, with real processes: `inlet ingest` and two `inlet worker`s against
 * a Redis of the test's own, the example processor, and `inlet send` for 200 deliveries with
 * duplicates, every status and no order. The example processor's file is checked against the
 * guarantees of the README's Guarantees section.
 */

interface SavedRecord {
  predictionId: string;
  status: PredictionStatus;
  webhookId: string;
  attempt: number;
  pid: number;
}

interface Sent {
  webhookId: string;
  predictionId: string;
  status: PredictionStatus;
  outcome: string;
}

const PREFIX = 'e2e';

describe('end to end: ingest, two workers, the example processor', () => {
  let redis: TestRedis;
  let dir: string;
  let url: string;
  let queue: Queue;
  const processes: CliProcess[] = [];
  const secret = makeSecret();
  let env: Record<string, string>;
  const outputs = () => join(dir, 'outputs.jsonl');

  before(async () => {
    redis = await TestRedis.start();
    dir = mkdtempSync(join(tmpdir(), 'inlet-e2e-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}/webhooks/replicate`;
    env = {
      REDIS_URL: redis.url,
      INLET_PREFIX: PREFIX,
      REPLICATE_WEBHOOK_SECRET: secret,
      PORT: String(port),
      HOST: '127.0.0.1',
      INLET_PROCESSORS: './examples/save-outputs.js',
      SAVE_OUTPUTS_FILE: outputs(),
      WORKER_CONCURRENCY: '8',
    };
    const ingest = spawnCli(['ingest'], { env });
    const workers = [spawnCli(['worker'], { env }), spawnCli(['worker'], { env })];
    processes.push(ingest, ...workers);
    await ingest.waitForLog((l) => l.msg === 'ingest listening');
    await Promise.all(workers.map((w) => w.waitForLog((l) => l.msg === 'worker ready')));
    queue = new bullmq.Queue(QUEUE_NAME, { connection: { url: redis.url }, prefix: PREFIX });
  });

  after(async () => {
    await queue?.close();
    const codes = await Promise.all(processes.map((p) => stopCli(p, 'SIGTERM')));
    await redis?.destroy();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(codes, [0, 0, 0], 'every process stops cleanly on SIGTERM');
  });

  /** Waits until no delivery is waiting, delayed or running. */
  async function drained(): Promise<void> {
    await waitFor('the queue drained', async () => {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0);
    });
  }

  function records(): SavedRecord[] {
    if (!existsSync(outputs())) return [];
    return readFileSync(outputs(), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  let sent: Sent[] = [];

  test('inlet send: 204 deliveries, every status, each twice, shuffled: 102 accepted, 102 duplicate', async () => {
    const result = await runCli(
      [
        'send',
        '--url',
        url,
        '--count',
        '34',
        '--status',
        'all',
        '--duplicate',
        '--shuffle',
        '--json',
      ],
      { env: { REPLICATE_WEBHOOK_SECRET: secret }, timeoutMs: 30_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /sent 204 deliveries for 34 predictions .*: 102 accepted, 102 duplicate, 0 rejected, 0 failed/,
    );
    sent = jsonLines(result.stdout) as unknown as Sent[];
    assert.equal(sent.length, 204);
    await drained();
  });

  test('terminal states ran once per prediction, with the status sent', () => {
    const terminalSent = new Map(
      sent.filter((s) => isTerminal(s.status)).map((s) => [s.predictionId, s.status]),
    );
    assert.equal(terminalSent.size, 34);
    const terminalRuns = records().filter((r) => isTerminal(r.status));
    assert.equal(terminalRuns.length, 34, 'one terminal run per prediction');
    for (const run of terminalRuns) assert.equal(run.status, terminalSent.get(run.predictionId));
    const statuses = new Set(terminalRuns.map((r) => r.status));
    assert.deepEqual([...statuses].sort(), ['aborted', 'canceled', 'failed', 'succeeded']);
  });

  test('a duplicate (same webhook-id) never ran again; nothing ran that was not accepted', () => {
    const accepted = new Set(sent.filter((s) => s.outcome === 'accepted').map((s) => s.webhookId));
    const seen = new Set<string>();
    for (const run of records()) {
      assert.ok(accepted.has(run.webhookId), `${run.webhookId} was accepted`);
      assert.ok(!seen.has(run.webhookId), `${run.webhookId} ran once`);
      seen.add(run.webhookId);
    }
  });

  test('no non-terminal state ran after its prediction reached a terminal state', () => {
    const finished = new Set<string>();
    for (const run of records()) {
      assert.ok(
        !finished.has(run.predictionId),
        `${run.predictionId}: ${run.status} after terminal`,
      );
      if (isTerminal(run.status)) finished.add(run.predictionId);
    }
    // Shuffled, some updates came late and were recorded but not dispatched; the rest ran.
    const updates = records().filter((r) => !isTerminal(r.status));
    assert.ok(updates.length <= 68);
    assert.ok(
      records().every((r) => r.attempt === 1),
      'no processor failed',
    );
  });

  test('both workers took deliveries', () => {
    assert.equal(new Set(records().map((r) => r.pid)).size, 2);
  });

  test('late deliveries with new webhook-ids: accepted, but neither an update nor a terminal re-runs', async () => {
    const before = records().length;
    const predictions = [...new Set(sent.map((s) => s.predictionId))].slice(0, 3);
    const late = await runCli(
      [
        'send',
        '--url',
        url,
        '--prediction',
        predictions.join(','),
        '--status',
        'processing,succeeded',
      ],
      { env: { REPLICATE_WEBHOOK_SECRET: secret } },
    );
    assert.match(late.stdout, /sent 6 deliveries for 3 predictions .*: 6 accepted/);
    await drained();
    assert.equal(records().length, before, 'nothing ran');
  });
});
