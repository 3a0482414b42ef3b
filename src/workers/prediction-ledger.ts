import type { ChainableCommander, Redis } from 'ioredis';
import type { PredictionStatus } from '../core/prediction.js';
import {
  type FigureSink,
  recordProcessorRun,
  recordWorkerEvent,
  type WorkerEvent,
} from '../core/worker-figures.js';
import {
  BEGIN_DELIVERY,
  FINISH_DELIVERY,
  MARK_PROCESSOR_DONE,
  RELEASE_PREDICTION_LOCK,
  RENEW_PREDICTION_LOCK,
} from './ledger-scripts.js';

/**
 * Keys of the ledger, all under `INLET_PREFIX`:
 * - `<prefix>:prediction:<id>` HASH: `status` and `terminalAt` once a terminal delivery was
 *   seen; `done:<processor>` → the webhook id whose run succeeded (terminal processors, once per
 *   prediction); `skipped` → deliveries recorded but not dispatched after the terminal state.
 *   Expires `retentionSeconds` after its last write.
 * - `<prefix>:prediction:<id>:lock` STRING: token of the delivery running processors for the
 *   prediction; expires after `lockTtlMs` unless renewed, so a dead worker's hold lapses.
 * - `<prefix>:delivery:<webhook-id>` HASH: `predictionId`, `status`, `done:<processor>` for each
 *   processor that succeeded on this delivery, `waits` (times it found the prediction busy),
 *   and after a failed try `failed` (JSON array of processor names), `error`, `attempts`.
 *   Deleted when the delivery completes; kept `retentionSeconds` while it is retried or
 *   dead-lettered, which is where `inlet replay` reads the failed processors from.
 */
export const ledgerKeys = {
  prediction: (prefix: string, id: string) => `${prefix}:prediction:${id}`,
  lock: (prefix: string, id: string) => `${prefix}:prediction:${id}:lock`,
  delivery: (prefix: string, webhookId: string) => `${prefix}:delivery:${webhookId}`,
};

/** The delivery a ledger call is about. */
export interface DeliveryRef {
  webhookId: string;
  predictionId: string;
  status: PredictionStatus;
  /** True for `succeeded`, `failed`, `canceled`, `aborted`: processors run once per prediction. */
  terminal: boolean;
}

/** What {@link PredictionLedger.begin} decided. */
export type BeginOutcome =
  | { kind: 'skip'; recordedStatus: string }
  | { kind: 'done'; recordedStatus: string }
  | { kind: 'busy'; waits: number }
  | { kind: 'run'; pending: string[] };

/** One processor run that did not succeed, for the figures. */
export interface FailedRun {
  processor: string;
  seconds: number;
}

export interface LedgerOptions {
  prefix: string;
  /** Lifetime of the prediction lock without renewal (the worker's lock duration). */
  lockTtlMs: number;
  /** How long ledger entries outlive their last write. */
  retentionSeconds: number;
  /** Where processor runs and delivery events are counted (a FigureTally in workers). */
  figures: FigureSink;
}

/** A held prediction lock, renewed until {@link LockHold.stop}. */
export interface LockHold {
  stop(): void;
}

interface LedgerCommands {
  beginDelivery(...args: (string | number)[]): Promise<string[]>;
  markProcessorDone(...args: (string | number)[]): Promise<number>;
  finishDelivery(lockKey: string, deliveryKey: string, token: string): Promise<number>;
  renewPredictionLock(key: string, token: string, ttl: number): Promise<number>;
  releasePredictionLock(key: string, token: string): Promise<number>;
}

type LedgerPipeline = ChainableCommander & {
  releasePredictionLock(key: string, token: string): LedgerPipeline;
};

/**
 * The per-prediction ledger in Redis that makes processors' guarantees hold across any number of
 * worker processes: which terminal processors succeeded once per prediction, which processors
 * succeeded on each delivery, and one lock per prediction so that its processors never run at
 * the same time. Every step that must be atomic is one script (ledger-scripts.ts) or one MULTI.
 */
export class PredictionLedger {
  private readonly commands: LedgerCommands;

  constructor(
    private readonly redis: Redis,
    private readonly options: LedgerOptions,
  ) {
    redis.defineCommand('beginDelivery', { numberOfKeys: 3, lua: BEGIN_DELIVERY });
    redis.defineCommand('markProcessorDone', { numberOfKeys: 2, lua: MARK_PROCESSOR_DONE });
    redis.defineCommand('finishDelivery', { numberOfKeys: 2, lua: FINISH_DELIVERY });
    redis.defineCommand('renewPredictionLock', { numberOfKeys: 1, lua: RENEW_PREDICTION_LOCK });
    redis.defineCommand('releasePredictionLock', {
      numberOfKeys: 1,
      lua: RELEASE_PREDICTION_LOCK,
    });
    this.commands = redis as unknown as LedgerCommands;
  }

  /**
   * Decides, in one atomic step, whether a delivery is skipped, already done, must wait, or runs
   * (and then holds the prediction lock under `token`). See `BEGIN_DELIVERY`.
   */
  async begin(delivery: DeliveryRef, token: string, processors: string[]): Promise<BeginOutcome> {
    const { prefix, lockTtlMs, retentionSeconds } = this.options;
    const [kind, detail = '', ...pending] = await this.commands.beginDelivery(
      ledgerKeys.prediction(prefix, delivery.predictionId),
      ledgerKeys.lock(prefix, delivery.predictionId),
      ledgerKeys.delivery(prefix, delivery.webhookId),
      token,
      lockTtlMs,
      retentionSeconds,
      delivery.status,
      delivery.terminal ? '1' : '0',
      delivery.webhookId,
      delivery.predictionId,
      Date.now(),
      ...processors,
    );
    if (kind === 'skip' || kind === 'done') return { kind, recordedStatus: detail };
    if (kind === 'busy') return { kind, waits: Number(detail) };
    return { kind: 'run', pending };
  }

  /**
   * Records a processor's success (and counts the run). Resolves `false` when a terminal
   * processor's success had already been recorded for the prediction (it ran twice).
   */
  async markDone(delivery: DeliveryRef, processor: string, seconds: number): Promise<boolean> {
    const { prefix, retentionSeconds } = this.options;
    const first = await this.commands.markProcessorDone(
      ledgerKeys.prediction(prefix, delivery.predictionId),
      ledgerKeys.delivery(prefix, delivery.webhookId),
      processor,
      delivery.terminal ? '1' : '0',
      delivery.webhookId,
      retentionSeconds,
    );
    recordProcessorRun(this.options.figures, prefix, processor, true, seconds);
    return first === 1;
  }

  /**
   * Keeps the prediction lock alive while processors run: renews it every third of its lifetime,
   * so two renewals can fail (a Redis blip) before it lapses. `onLost` is called once, when a
   * renewal finds the lock gone: another delivery may now run processors of the prediction.
   */
  hold(predictionId: string, token: string, onLost: () => void): LockHold {
    const key = ledgerKeys.lock(this.options.prefix, predictionId);
    let lost = false;
    const timer = setInterval(
      () => {
        this.commands.renewPredictionLock(key, token, this.options.lockTtlMs).then(
          (renewed) => {
            if (renewed !== 0 || lost) return;
            lost = true;
            clearInterval(timer);
            onLost();
          },
          () => undefined, // Redis away: the next tick tries again; the lock may still lapse.
        );
      },
      Math.max(Math.floor(this.options.lockTtlMs / 3), 50),
    );
    timer.unref();
    return {
      stop: () => {
        lost = true; // a renewal still in flight, answered after the release, is not a loss
        clearInterval(timer);
      },
    };
  }

  /**
   * Ends a delivery that has nothing left to do: releases the lock when `token` holds it, forgets
   * the delivery's progress and counts `event`.
   */
  async complete(
    delivery: DeliveryRef,
    token: string | undefined,
    event: WorkerEvent,
  ): Promise<void> {
    const { prefix } = this.options;
    await this.commands.finishDelivery(
      ledgerKeys.lock(prefix, delivery.predictionId),
      ledgerKeys.delivery(prefix, delivery.webhookId),
      token ?? '',
    );
    recordWorkerEvent(this.options.figures, prefix, event);
  }

  /**
   * Ends a failed try: releases the lock when `token` is given, keeps which processors failed with the error (read by
   * `inlet replay`), and counts the try as `retried` or `dead_lettered`.
   */
  async fail(
    delivery: DeliveryRef,
    token: string | undefined,
    failure: { processors: string[]; error: string; attempts: number; final: boolean },
    failedRuns: FailedRun[],
  ): Promise<void> {
    const { prefix, retentionSeconds } = this.options;
    const deliveryKey = ledgerKeys.delivery(prefix, delivery.webhookId);
    const tx = this.redis.multi() as LedgerPipeline;
    if (token) tx.releasePredictionLock(ledgerKeys.lock(prefix, delivery.predictionId), token);
    tx.hset(deliveryKey, {
      predictionId: delivery.predictionId,
      status: delivery.status,
      failed: JSON.stringify(failure.processors),
      error: failure.error,
      attempts: failure.attempts,
    });
    tx.expire(deliveryKey, retentionSeconds);
    await exec(tx);
    this.addRuns(failedRuns);
    recordWorkerEvent(this.options.figures, prefix, failure.final ? 'dead_lettered' : 'retried');
  }

  /** Releases the lock of a delivery handed back to the queue, recording the runs cut short. */
  async release(delivery: DeliveryRef, token: string, failedRuns: FailedRun[]): Promise<void> {
    await this.commands.releasePredictionLock(
      ledgerKeys.lock(this.options.prefix, delivery.predictionId),
      token,
    );
    this.addRuns(failedRuns);
  }

  /** Counts runs that did not succeed; used alone when nothing else is written. */
  recordFailedRuns(failedRuns: FailedRun[]): void {
    this.addRuns(failedRuns);
  }

  private addRuns(runs: FailedRun[]): void {
    for (const run of runs) {
      recordProcessorRun(
        this.options.figures,
        this.options.prefix,
        run.processor,
        false,
        run.seconds,
      );
    }
  }
}

/** Runs a transaction and returns its results, throwing the first command error. */
async function exec(tx: ChainableCommander): Promise<unknown[]> {
  const results = await tx.exec();
  if (!results) throw new Error('ledger transaction aborted');
  const failed = results.find(([error]) => error !== null);
  if (failed) throw failed[0];
  return results.map(([, value]) => value);
}
