import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import {
  closeStoredFigures,
  recordOutputsStored,
} from '../../src/processors/output-store/stored-figures.js';
import { ReconcileMetrics } from '../../src/reconcile/reconcile-metrics.js';
import { TestRedis } from '../support/redis-server.js';
import { unlessInstalled } from '../support/requires-tool.js';
import { waitFor } from '../support/wait-for.js';

const PROMTOOL = '/usr/bin/promtool';
const RULES = 'deploy/prometheus/reconcile-alerts.yml';
const skipPromtool = unlessInstalled(
  existsSync(PROMTOOL),
  `${PROMTOOL} (apt-get install prometheus)`,
);

let redis: TestRedis;
let client: Redis;
before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
});
after(async () => {
  await closeStoredFigures();
  client.disconnect();
  await redis.destroy();
});

describe('reconcile metrics and alerts', () => {
  it('counts reconciled deliveries by status, passes and API requests, and exports keep-outputs figures from Redis', async () => {
    const metrics = new ReconcileMetrics();
    metrics.onRequest('list', 'ok');
    metrics.onRequest('get', 'rate_limited');
    metrics.onPass({
      pages: 1,
      gets: 1,
      requests: 2,
      seen: 3,
      recorded: 1,
      deferred: 0,
      reconciled: [
        {
          predictionId: 'a',
          status: 'succeeded',
          webhookId: 'x',
          completedAt: null,
          outcome: 'accepted',
        },
        {
          predictionId: 'b',
          status: 'failed',
          webhookId: 'y',
          completedAt: null,
          outcome: 'duplicate',
        },
      ],
      stoppedBy: 'end',
      seconds: 0.2,
    });
    const prefix = `m${process.pid}`;
    recordOutputsStored(90, { REDIS_URL: redis.url, INLET_PREFIX: prefix });
    recordOutputsStored(4000, { REDIS_URL: redis.url, INLET_PREFIX: prefix });
    await waitFor(
      'figures written',
      async () => (await client.hget(`${prefix}:reconcile:outputs-stored`, 'count')) === '2',
      { timeoutMs: 5_000 },
    );
    const text = await metrics.text(client, prefix);
    assert.match(text, /inlet_reconciled_deliveries_total\{status="succeeded"\} 1\n/);
    assert.match(
      text,
      /inlet_reconciled_deliveries_total\{status="failed"\} 0\n/,
      'a duplicate is no new loss',
    );
    assert.match(text, /inlet_reconcile_api_requests_total\{call="get",outcome="rate_limited"\} 1/);
    assert.match(text, /inlet_reconcile_pass_duration_seconds_count\{stopped_by="end"\} 1/);
    assert.match(text, /inlet_outputs_stored_after_completion_seconds_bucket\{le="60"\} 0\n/);
    assert.match(text, /inlet_outputs_stored_after_completion_seconds_bucket\{le="120"\} 1\n/);
    assert.match(text, /inlet_outputs_stored_after_completion_seconds_bucket\{le="\+Inf"\} 2\n/);

    // Every metric the alert rules use is one the reconciler exports.
    const rules = readFileSync(RULES, 'utf8').replace(/^\s*#.*$/gm, '');
    const used = new Set(
      (rules.match(/\binlet_[a-z_]+\b/g) ?? []).map((n) => n.replace(/_(bucket|sum|count)$/, '')),
    );
    for (const name of used)
      assert.match(text, new RegExp(`# TYPE ${name} `), `${name} is exported`);
  });

  it('has valid alert rules that fire when they should', { skip: skipPromtool }, () => {
    execFileSync(PROMTOOL, ['check', 'rules', RULES], { stdio: 'pipe' });
    execFileSync(PROMTOOL, ['test', 'rules', 'deploy/prometheus/reconcile-alerts.test.yml'], {
      stdio: 'pipe',
    });
  });
});
