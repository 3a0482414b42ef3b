import type Router from '@koa/router';
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client';
import { withDeadline } from '../core/deadline.js';
import { QUEUE_NAME } from '../core/job.js';
import { RUN_BUCKETS, type WorkerEvent, type WorkerFigures } from '../core/worker-figures.js';
import { clusterMetricsText, shareWithPrimary } from './cluster-metrics.js';
import { QUEUE_STATES, type QueueFigureReader, type QueueFigures } from './queue-figures.js';
import type { DeliveryOutcome } from './webhook-route.js';

/** Every delivery outcome, so that each counter series exists (at 0) before its first delivery. */
const OUTCOMES = Object.keys({
  accepted: true,
  duplicate: true,
  invalid_signature: true,
  stale: true,
  malformed: true,
  too_large: true,
  unsupported_media_type: true,
  unavailable: true,
  internal_error: true,
} satisfies Record<DeliveryOutcome, true>) as DeliveryOutcome[];

const WORKER_EVENTS = Object.keys({
  processed: true,
  retried: true,
  dead_lettered: true,
  skipped_after_terminal: true,
  redriven: true,
} satisfies Record<WorkerEvent, true>) as WorkerEvent[];

/** Ack latency buckets: a stored delivery takes one or two Redis round trips. */
const ACK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface IngestMetricsOptions {
  /**
   * How long a scrape waits for Redis before it answers with the ingest's own figures only.
   * @defaultValue `1000`
   */
  readTimeoutMs?: number;
  /** Also export Node.js process metrics (`process_*`, `nodejs_*`). @defaultValue `true` */
  processMetrics?: boolean;
  /**
   * One of several ingest processes (`INLET_INGEST_PROCESSES`): `/metrics` answers with the
   * figures of all of them, gathered by the cluster primary. @defaultValue `false`
   */
  clustered?: boolean;
}

/**
 * The ingest's Prometheus metrics, in a registry of its own.
 *
 * Deliveries are counted in memory on the hot path (two increments, no I/O). Queue depth,
 * dead-letter and worker figures are read from Redis when Prometheus scrapes, once per scrape
 * however many metrics need them, so one scrape target covers any number of worker processes.
 * A scrape while Redis is away answers at once with the in-memory figures and `inlet_redis_up 0`.
 */
export class IngestMetrics {
  /** The registry `GET /metrics` serves. */
  readonly registry = new Registry();
  private readonly readTimeoutMs: number;
  private readonly clustered: boolean;
  private reader: QueueFigureReader | undefined;
  private scrape: Promise<QueueFigures | undefined> | undefined;
  private readonly deliveries: Counter<'outcome'>;
  private readonly ackSeconds: Histogram<'outcome'>;

  constructor(options: IngestMetricsOptions = {}) {
    this.readTimeoutMs = options.readTimeoutMs ?? 1000;
    this.clustered = options.clustered ?? false;
    const registers = [this.registry];
    this.deliveries = new Counter({
      name: 'inlet_deliveries_total',
      help: 'Webhook deliveries answered by the ingest, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.ackSeconds = new Histogram({
      name: 'inlet_ack_duration_seconds',
      help: 'Time from request start to the answer (for accepted: until Redis confirmed the write).',
      labelNames: ['outcome'],
      buckets: ACK_BUCKETS,
      registers,
    });
    for (const outcome of OUTCOMES) {
      this.deliveries.inc({ outcome }, 0);
      this.ackSeconds.zero({ outcome });
    }
    this.registerQueueMetrics();
    this.registerWorkerMetrics();
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    if (this.clustered) shareWithPrimary(this.registry);
  }

  /** Counts one answered delivery; the ingest's `onDelivery` hook. */
  recordDelivery(outcome: DeliveryOutcome, seconds: number): void {
    this.deliveries.inc({ outcome });
    this.ackSeconds.observe({ outcome }, seconds);
  }

  /** Where queue and worker figures come from; until set, only in-memory figures are served. */
  readFrom(reader: QueueFigureReader): void {
    this.reader = reader;
  }

  /** Mounts `GET /metrics` (Prometheus text format, open like `/healthz`). */
  mount(router: Router): void {
    router.get('/metrics', async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.type = this.registry.contentType;
      ctx.body = this.clustered ? await clusterMetricsText() : await this.registry.metrics();
    });
  }

  /**
   * The Redis figures of the scrape under way. prom-client collects every metric concurrently;
   * they all share this one read, which never takes longer than `readTimeoutMs`.
   */
  private figures(): Promise<QueueFigures | undefined> {
    const reader = this.reader;
    if (!reader) return Promise.resolve(undefined);
    const ms = this.readTimeoutMs;
    this.scrape ??= withDeadline(
      reader.read(),
      ms,
      () => new Error(`Redis did not answer within ${ms} ms`),
    )
      .catch(() => undefined)
      .finally(() => {
        this.scrape = undefined;
      });
    return this.scrape;
  }

  private registerQueueMetrics(): void {
    const registers = [this.registry];
    const figures = () => this.figures();
    // A label, not just a name: a labelled series can be withdrawn while Redis is away, where an
    // unlabelled gauge would fall back to 0 and read as "no dead letters".
    const queue = QUEUE_NAME;
    new Gauge({
      name: 'inlet_redis_up',
      help: '1 when this scrape could read the queue and worker figures from Redis, else 0.',
      registers,
      aggregator: 'min',
      async collect() {
        this.set((await figures()) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'inlet_queue_jobs',
      help: 'Jobs in the deliveries queue, by BullMQ state (failed = dead-lettered).',
      aggregator: 'max',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        const read = await figures();
        this.reset();
        if (read) for (const state of QUEUE_STATES) this.set({ queue, state }, read.jobs[state]);
      },
    });
    new Gauge({
      name: 'inlet_dead_letter_jobs',
      help: 'Dead-lettered deliveries: jobs in the failed state, waiting for `inlet replay` or a retry from the dashboard.',
      aggregator: 'max',
      labelNames: ['queue'],
      registers,
      async collect() {
        const read = await figures();
        this.reset();
        if (read) this.set({ queue }, read.jobs.failed);
      },
    });
    new Gauge({
      name: 'inlet_queue_oldest_waiting_age_seconds',
      help: 'Seconds since the delivery workers take next was queued; 0 when nothing waits.',
      aggregator: 'max',
      labelNames: ['queue'],
      registers,
      async collect() {
        const read = await figures();
        this.reset();
        if (read) this.set({ queue }, read.oldestWaitingSeconds);
      },
    });
  }

  private registerWorkerMetrics(): void {
    const registers = [this.registry];
    const workers = async () => (await this.figures())?.workers;
    new Counter({
      name: 'inlet_processor_runs_total',
      help: 'Processor runs by all workers, by processor and result (ok, error).',
      aggregator: 'max',
      labelNames: ['processor', 'result'],
      registers,
      async collect() {
        const read = await workers();
        this.reset();
        for (const [processor, runs] of read?.processors ?? []) {
          this.inc({ processor, result: 'ok' }, runs.ok);
          this.inc({ processor, result: 'error' }, runs.error);
        }
      },
    });
    new Counter({
      name: 'inlet_worker_events_total',
      help: 'Delivery events counted by all workers: processed, retried (a retry was scheduled), dead_lettered, skipped_after_terminal, redriven.',
      labelNames: ['event'],
      registers,
      aggregator: 'max',
      async collect() {
        const read = await workers();
        this.reset();
        if (!read) return;
        for (const event of WORKER_EVENTS) this.inc({ event }, read.events[event] ?? 0);
      },
    });
    this.registry.registerMetric(new RunDurationHistogram(workers) as unknown as Metric);
  }
}

/**
 * `inlet_processor_run_duration_seconds`: a histogram whose buckets the workers already count in
 * Redis. prom-client's Histogram can only observe, so this metric hands the registry its series
 * directly.
 */
class RunDurationHistogram {
  readonly name = 'inlet_processor_run_duration_seconds';
  readonly help = 'Duration of processor runs by all workers, by processor.';
  readonly type = 'histogram';
  /** Read from Redis, the same in every ingest process: not summed across them. */
  readonly aggregator = 'max';

  constructor(private readonly workers: () => Promise<WorkerFigures | undefined>) {}

  async get() {
    const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
    for (const [processor, runs] of (await this.workers())?.processors ?? []) {
      let cumulative = 0;
      RUN_BUCKETS.forEach((le, index) => {
        cumulative += runs.buckets[index] ?? 0;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { processor, le: String(le) },
          value: cumulative,
        });
      });
      cumulative += runs.buckets[RUN_BUCKETS.length] ?? 0;
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { processor, le: '+Inf' },
        value: cumulative,
      });
      values.push({ metricName: `${this.name}_sum`, labels: { processor }, value: runs.sum });
      values.push({ metricName: `${this.name}_count`, labels: { processor }, value: cumulative });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }

  /** The figures live in Redis; there is nothing here to reset. */
  reset(): void {}
}
