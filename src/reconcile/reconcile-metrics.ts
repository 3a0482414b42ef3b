import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { withDeadline } from '../core/deadline.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { storedFiguresKey, storedFiguresText } from '../processors/output-store/stored-figures.js';
import type { PassReport } from './reconcile-pass.js';
import type { ReconcileObserver } from './reconciler.js';
import type { ApiErrorKind } from './replicate-client.js';

/**
 * The reconciler's own Prometheus figures, served on `INLET_RECONCILE_METRICS_PORT`: a separate
 * registry and port, so that the ingest's `/metrics` and the workers' figures stay untouched.
 */
export class ReconcileMetrics implements ReconcileObserver {
  readonly registry = new Registry();
  private readonly reconciled = new Counter({
    name: 'inlet_reconciled_deliveries_total',
    help: 'Deliveries made from the API because no webhook of the terminal state was recorded',
    labelNames: ['status'],
    registers: [this.registry],
  });
  private readonly passes = new Histogram({
    name: 'inlet_reconcile_pass_duration_seconds',
    help: 'Duration of reconcile passes',
    labelNames: ['stopped_by'],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  private readonly requests = new Counter({
    name: 'inlet_reconcile_api_requests_total',
    help: "Requests to Replicate's API by call and outcome (ok, rate_limited, server, network, refused, unexpected)",
    labelNames: ['call', 'outcome'],
    registers: [this.registry],
  });
  private readonly lastPass = new Gauge({
    name: 'inlet_reconcile_last_pass_timestamp_seconds',
    help: 'When the last reconcile pass ended (Unix seconds)',
    registers: [this.registry],
  });

  constructor() {
    for (const status of ['succeeded', 'failed', 'canceled', 'aborted']) {
      this.reconciled.inc({ status }, 0);
    }
  }

  onRequest(call: 'list' | 'get', outcome: 'ok' | ApiErrorKind): void {
    this.requests.inc({ call, outcome });
  }

  onPass(report: PassReport): void {
    for (const r of report.reconciled) {
      if (r.outcome === 'accepted') this.reconciled.inc({ status: r.status });
    }
    this.passes.observe({ stopped_by: report.stoppedBy }, report.seconds);
    this.lastPass.set(Date.now() / 1000);
  }

  /**
   * Prometheus text: the reconciler's figures, and keep-outputs' completion-to-stored histogram
   * read from Redis (left out when Redis does not answer within a second).
   */
  async text(redis?: Redis, prefix = 'inlet'): Promise<string> {
    let stored = '';
    if (redis) {
      const hash = await withDeadline(
        redis.hgetall(storedFiguresKey(prefix)),
        1000,
        () => new Error('timeout'),
      ).catch(() => undefined);
      if (hash) stored = storedFiguresText(hash);
    }
    return `${await this.registry.metrics()}${stored}`;
  }

  /** Serves `GET /metrics` on `port` of `host`. */
  async serve(port: number, host: string, redis?: Redis, prefix?: string): Promise<Server> {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      this.text(redis, prefix).then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    });
    server.listen(port, host);
    await once(server, 'listening');
    return server;
  }
}
