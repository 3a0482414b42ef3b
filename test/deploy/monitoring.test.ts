import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { recordProcessorRun } from '../../src/core/worker-figures.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { waitUntilReady } from '../support/dashboard-stack.js';
import { makeSecret } from '../support/deliveries.js';
import { startReadyIngest } from '../support/ingest.js';
import { TestRedis } from '../support/redis-server.js';
import { unlessInstalled } from '../support/requires-tool.js';

const PROMTOOL = '/usr/bin/promtool';
const ALERTS = 'deploy/prometheus/alerts.yml';
const DASHBOARD = 'deploy/grafana/dashboards/inlet.json';

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

/** Every PromQL expression of the Grafana dashboard, with Grafana's variables filled in. */
function dashboardQueries(): Array<{ title: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      title: panel.title,
      expr: target.expr.replaceAll('$__rate_interval', '1m'),
    })),
  );
}

/** `inlet_*` names a text refers to, histogram series folded into their metric. */
function metricNames(text: string): Set<string> {
  const names = text.match(/\binlet_[a-z_]+\b/g) ?? [];
  return new Set(names.map((name) => name.replace(/_(bucket|sum|count)$/, '')));
}

function withoutComments(yaml: string): string {
  return yaml.replace(/^\s*#.*$/gm, '');
}

const skipPromtool = unlessInstalled(
  existsSync(PROMTOOL),
  `${PROMTOOL} (apt-get install prometheus)`,
);

describe('deploy/prometheus and deploy/grafana', () => {
  it('has a valid Prometheus config and rule file', { skip: skipPromtool }, () => {
    execFileSync(PROMTOOL, ['check', 'config', 'deploy/prometheus/prometheus.yml'], {
      stdio: 'pipe',
    });
  });

  it('fires each alert when it should, and only then', { skip: skipPromtool }, () => {
    execFileSync(PROMTOOL, ['test', 'rules', 'deploy/prometheus/alerts.test.yml'], {
      stdio: 'pipe',
    });
  });

  it('has only valid PromQL in the Grafana dashboard', { skip: skipPromtool }, () => {
    // promtool parses PromQL in rule files: each panel query becomes a recording rule.
    const dir = mkdtempSync(join(tmpdir(), 'inlet-dashboard-'));
    try {
      const rules = dashboardQueries().map(
        (query, index) =>
          `      - record: dashboard:query_${index}\n        expr: ${JSON.stringify(query.expr)}`,
      );
      const file = join(dir, 'dashboard-rules.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      execFileSync(PROMTOOL, ['check', 'rules', file], { stdio: 'pipe' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('against what the ingest really exports', () => {
    let redis: TestRedis;
    let ingest: IngestServer;
    let exported: Set<string>;

    before(async () => {
      redis = await TestRedis.start();
      const prefix = 'deploy-check';
      const config = loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        REPLICATE_WEBHOOK_SECRET: makeSecret(),
        INLET_PREFIX: prefix,
      });
      ingest = await startReadyIngest({ config, logger: createLogger({ level: 'silent' }) });
      await waitUntilReady(ingest.url);
      // Processor series exist once a worker has run something.
      const client = redis.client();
      const tx = client.multi();
      recordProcessorRun(tx, prefix, 'log', true, 0.01);
      await tx.exec();
      client.disconnect();
      const text = await (await fetch(`${ingest.url}/metrics`)).text();
      exported = new Set(
        [...text.matchAll(/^# TYPE (inlet_[a-z_]+) /gm)].map((m) => m[1] as string),
      );
    });

    after(async () => {
      await ingest?.close();
      await redis?.destroy();
    });

    it('alerts only on metrics the ingest exports', () => {
      for (const name of metricNames(withoutComments(readFileSync(ALERTS, 'utf8')))) {
        assert.ok(exported.has(name), `${ALERTS} uses ${name}, which /metrics does not export`);
      }
    });

    it('charts only metrics the ingest exports', () => {
      for (const query of dashboardQueries()) {
        for (const name of metricNames(query.expr)) {
          assert.ok(exported.has(name), `panel "${query.title}" uses ${name}, not exported`);
        }
      }
    });
  });
});
