import type { Worker } from 'bullmq';
import { bullmq } from '../core/commonjs-packages.js';
import { type Config, ConfigError } from '../core/config.js';
import {
  type DeliveryJob,
  deliveryRetention,
  predictionOfJob,
  QUEUE_NAME,
  webhookIdOf,
} from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { closeRedis, connectRedis, type RedisClient } from '../core/redis.js';
import { allShards, globalPrefix, layoutOf, queuePrefix, recordPrefix } from '../core/shards.js';
import { FigureTally } from '../core/worker-figures.js';
import loggingProcessor from '../processors/logging.js';
import { backoffStrategy } from './backoff.js';
import { CountedLedger } from './counted-ledger.js';
import { DeliveryDispatcher, type DeliveryResult } from './dispatch-delivery.js';
import { WorkerHeartbeat } from './heartbeat.js';
import { installLedgerOnFetch, LedgerOnFetch } from './ledger-on-fetch.js';
import { loadProcessors } from './load-processors.js';
import { PredictionLedger } from './prediction-ledger.js';
import type { Processor } from './processor.js';

export interface WorkerStartOptions {
  config: Config;
  logger: Logger;
  /** The processors to run; left out, they are loaded from `INLET_PROCESSORS`. */
  processors?: Processor[];
  /** Kept fresh while the worker runs connected to Redis, for `inlet healthcheck`. */
  heartbeatFile?: string;
}

/** A running worker. */
export interface InletWorker {
  /**
   * Stops taking jobs and lets running processors finish for `INLET_SHUTDOWN_GRACE_MS`; then
   * aborts their `ctx.signal` and hands each job back to the queue once its processor returns,
   * or 1.5 s later if it does not. Closes the worker's Redis connections. Resolves within
   * grace + 2 s even when Redis is unreachable (jobs it could not hand back are found by the
   * other workers' stall check). Safe to call twice.
   */
  close(): Promise<void>;
  /** The BullMQ worker of the first shard taken from: with `INLET_SHARDS=1`, the only one. */
  worker: Worker<DeliveryJob, DeliveryResult>;
  /** One BullMQ worker per shard taken from (`INLET_WORKER_SHARDS`). */
  workers: Worker<DeliveryJob, DeliveryResult>[];
}

/** How long after aborting `ctx.signal` a stopping worker stops waiting for processors. */
const FORCE_AFTER_ABORT_MS = 1_500;

/**
 * How long after the grace period a stopping worker stops waiting for anything, Redis included:
 * BullMQ's close waits for Redis for ever, and an orchestrator would SIGKILL the process.
 */
const HARD_STOP_AFTER_GRACE_MS = 2_000;

/**
 * Starts a BullMQ worker over the ingest's `deliveries` queue that runs processors under the
 * ledger's guarantees. It connects in the background and starts taking jobs once Redis answers.
 *
 * Lock and stall settings (see the README's "Guarantees"): a job's lock and its prediction's lock
 * last `INLET_LOCK_DURATION_MS` (30 s) and are renewed while it runs, so an event loop blocked
 * for less than that loses nothing. A SIGKILLed worker's jobs are found by another worker's
 * stall check (every `INLET_STALLED_INTERVAL_MS`, 15 s) once their lock has lapsed: within
 * about lock + 2 × interval (one minute). A job that stalls more than `INLET_MAX_STALLED_COUNT`
 * (2) times is dead-lettered instead, so one poison delivery cannot crash every worker in turn.
 */
export async function startWorker(options: WorkerStartOptions): Promise<InletWorker> {
  const { config } = options;
  const logger = options.logger;
  const processors = options.processors ?? (await defaultProcessors(config));
  if (processors.length === 0) throw new ConfigError('INLET_PROCESSORS: no processors to run');
  const retentionSeconds = ledgerRetention(config);

  const redis = connectRedis(config, { role: 'patient', name: 'inlet:worker' });
  // The ledger has a connection of its own: ioredis copies every script defined on a connection
  // into each MULTI it builds, and BullMQ defines dozens on the worker's; with two MULTIs per
  // delivery that copy was the worker's largest cost in the bench.
  const ledgerRedis = connectRedis(config, { role: 'patient', name: 'inlet:ledger' });
  ledgerRedis.on('error', () => undefined); // the worker's own connection reports the outage
  const layout = layoutOf(config);
  const figurePrefix = globalPrefix(layout);
  const figures = new FigureTally(ledgerRedis);
  // One BullMQ worker per shard taken from, each with the ledger of its shard's slot; their
  // concurrencies add up to WORKER_CONCURRENCY (at least 1 each).
  const shards = config.INLET_WORKER_SHARDS ?? allShards(layout);
  const concurrency = Math.max(1, Math.ceil(config.WORKER_CONCURRENCY / shards.length));
  const onFetch = shards.map(
    (shard) =>
      new LedgerOnFetch(
        `${queuePrefix(layout, shard)}:${QUEUE_NAME}:`,
        {
          prefix: recordPrefix(layout, shard),
          lockTtlMs: config.INLET_LOCK_DURATION_MS,
          retentionSeconds,
        },
        processors,
      ),
  );
  // The ledger's begin and finish of each delivery go with BullMQ's fetch and completion of its
  // job, in one script call (src/core/scripts/fetch-and-begin.ts).
  installLedgerOnFetch(redis, onFetch);
  const parts = shards.map((shard, i) => {
    const fetches = onFetch[i] as LedgerOnFetch;
    const ledger = new CountedLedger(
      new PredictionLedger(
        ledgerRedis,
        fetches.ledger,
        // A delivery's end goes out with BullMQ's completion of its job.
        fetches,
      ),
      figures,
      figurePrefix,
    );
    const dispatcher = new DeliveryDispatcher({
      ledger,
      processors,
      logger,
      timeoutMs: config.INLET_PROCESSOR_TIMEOUT_MS,
      fetched: fetches,
    });
    const worker = new bullmq.Worker<DeliveryJob, DeliveryResult>(
      QUEUE_NAME,
      (job, token) => dispatcher.dispatch(job, token),
      {
        connection: redis,
        prefix: queuePrefix(layout, shard),
        concurrency,
        lockDuration: config.INLET_LOCK_DURATION_MS,
        stalledInterval: config.INLET_STALLED_INTERVAL_MS,
        maxStalledCount: config.INLET_MAX_STALLED_COUNT,
        ...deliveryRetention(config),
        settings: { backoffStrategy },
      },
    );
    observe(worker, dispatcher, ledgerRedis, logger);
    return { worker, dispatcher };
  });
  const workers = parts.map((part) => part.worker);
  const dispatchers = new Dispatchers(parts.map((part) => part.dispatcher));
  const worker = workers[0] as Worker<DeliveryJob, DeliveryResult>;
  worker.once('ready', () =>
    logger.info(
      {
        processors: processors.map((p) => p.name),
        concurrency: config.WORKER_CONCURRENCY,
        prefix: config.INLET_PREFIX,
        ...(config.INLET_SHARDS > 1 || config.INLET_WORKER_SHARDS ? { shards } : {}),
      },
      'worker ready',
    ),
  );

  const heartbeat =
    options.heartbeatFile === undefined
      ? undefined
      : new WorkerHeartbeat(
          options.heartbeatFile,
          () => redis.status === 'ready' && workers.every((each) => each.isRunning()),
        );

  let closing: Promise<void> | undefined;
  const close = () => {
    if (closing) return closing;
    heartbeat?.stop();
    // Every step shares one deadline, grace + HARD_STOP_AFTER_GRACE_MS from the first call, so
    // that a worker exits in time even while Redis does not answer.
    const stopBy = Date.now() + config.INLET_SHUTDOWN_GRACE_MS + HARD_STOP_AFTER_GRACE_MS;
    const left = (reserveMs: number) => Math.max(0, stopBy - reserveMs - Date.now());
    closing = shutdown(workers, dispatchers, config.INLET_SHUTDOWN_GRACE_MS, left(300), logger)
      .finally(() => figures.close(Math.min(2_000, left(200))))
      .finally(() => {
        const quitMs = Math.min(1_000, left(100));
        return Promise.all([closeRedis(redis, quitMs), closeRedis(ledgerRedis, quitMs)]);
      });
    return closing;
  };
  return { close, worker, workers };
}

/** The dispatchers of every shard, as one for shutdown. */
class Dispatchers {
  constructor(private readonly all: DeliveryDispatcher[]) {}

  get size(): number {
    return this.all.reduce((sum, dispatcher) => sum + dispatcher.size, 0);
  }

  abortAll(): void {
    for (const dispatcher of this.all) dispatcher.abortAll();
  }

  forceHandBack(): void {
    for (const dispatcher of this.all) dispatcher.forceHandBack();
  }
}

async function defaultProcessors(config: Config): Promise<Processor[]> {
  if (config.INLET_PROCESSORS.length === 0) return [loggingProcessor as Processor];
  return loadProcessors(config.INLET_PROCESSORS);
}

/** The ledger must outlive dead letters, or a re-driven delivery could re-run a processor. */
function ledgerRetention(config: Config): number {
  const deadLetters = config.INLET_DEAD_LETTER_RETENTION_SECONDS;
  const retention = config.INLET_LEDGER_RETENTION_SECONDS ?? deadLetters + 86_400;
  if (retention < deadLetters) {
    throw new ConfigError(
      `INLET_LEDGER_RETENTION_SECONDS: expected at least INLET_DEAD_LETTER_RETENTION_SECONDS (${deadLetters}), so that a re-driven delivery never re-runs a processor`,
    );
  }
  return retention;
}

function observe(
  worker: Worker<DeliveryJob, DeliveryResult>,
  dispatcher: DeliveryDispatcher,
  redis: RedisClient,
  logger: Logger,
): void {
  let lastError = '';
  worker.on('error', (error) => {
    // BullMQ repeats connection errors on every retry; one line per distinct error is enough.
    if (error.message === lastError) return;
    lastError = error.message;
    logger.warn({ err: error.message }, 'worker error');
  });
  worker.on('ready', () => {
    lastError = '';
  });
  worker.on('lockRenewalFailed', (jobIds) => dispatcher.lockLost(jobIds));
  worker.on('stalled', (jobId) => {
    const webhookId = webhookIdOf(jobId);
    predictionOfJob(redis, worker.toKey(jobId))
      .catch(() => undefined)
      .then((predictionId) =>
        logger.warn(
          { webhookId, predictionId },
          'delivery stalled (its worker stopped): back in the queue for another worker',
        ),
      );
  });
}

async function shutdown(
  workers: Worker<DeliveryJob, DeliveryResult>[],
  dispatcher: Dispatchers,
  graceMs: number,
  hardStopMs: number,
  logger: Logger,
): Promise<void> {
  logger.info(
    { running: dispatcher.size, graceMs },
    'worker stopping: no new jobs, running ones may finish',
  );
  const closed = Promise.all(workers.map((worker) => worker.close()));
  const abort = setTimeout(() => {
    if (dispatcher.size > 0) {
      logger.warn(
        { running: dispatcher.size },
        'grace period over: aborting processors and handing their jobs back',
      );
    }
    dispatcher.abortAll();
  }, graceMs);
  const force = setTimeout(() => {
    if (dispatcher.size > 0) {
      logger.warn(
        { running: dispatcher.size },
        'processors ignored the abort: handing their jobs back now',
      );
    }
    dispatcher.forceHandBack();
  }, graceMs + FORCE_AFTER_ABORT_MS);
  let hardStop: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'gave up'>((resolve) => {
    hardStop = setTimeout(() => resolve('gave up'), hardStopMs);
  });
  try {
    if ((await Promise.race([closed, gaveUp])) === 'gave up') {
      logger.warn(
        { running: dispatcher.size },
        'Redis did not let the worker close in time: stopping anyway; jobs not handed back return to the queue through the stall check',
      );
      closed.catch(() => undefined);
      for (const worker of workers) worker.disconnect().catch(() => undefined);
      return;
    }
  } finally {
    clearTimeout(abort);
    clearTimeout(force);
    clearTimeout(hardStop);
  }
  logger.info('worker stopped');
}
