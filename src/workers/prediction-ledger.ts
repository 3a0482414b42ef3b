import type { ChainableCommander } from 'ioredis';
import type { PredictionStatus } from '../core/prediction.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { beginDelivery3 } from '../core/scripts/begin-delivery-3.js';
import { finishDelivery3 } from '../core/scripts/finish-delivery-3.js';
import { markProcessorDone2 } from '../core/scripts/mark-processor-done-2.js';
import { defineScripts } from '../core/scripts/redis-script.js';
import { releasePredictionLock1 } from '../core/scripts/release-prediction-lock-1.js';
import { renewPredictionLock2 } from '../core/scripts/renew-prediction-lock-2.js';

/**
 * Keys of the ledger, all under `INLET_PREFIX`:
 * - `<prefix>:prediction:<id>` HASH: `status` once a terminal delivery was seen (the first
 *   one's); `done:<processor>` → `<webhook id> <try token>` of the run that succeeded (terminal
 *   processors, once per prediction); `skipped` → deliveries recorded but not dispatched after
 *   the terminal state. Expires `retentionSeconds` after its last write, or after its lock was
 *   last taken or renewed when that is later: a success recorded under a lock that is still the
 *   try's leaves the expiry as the lock's last renewal set it, under a lock lifetime before.
 * - `<prefix>:prediction:<id>:lock` STRING: token of the try running processors for the
 *   prediction; expires after `lockTtlMs` unless renewed, so a dead worker's hold lapses.
 * - `<prefix>:delivery:<webhook-id>` HASH, the progress of a delivery that has any to keep:
 *   `predictionId`, `status`, `done:<processor>` for each processor that succeeded on this
 *   delivery while others still had to run, `waits` (times it found the prediction busy), `try`
 *   (the token of a try that waited or was skipped, so that a resent script counts nothing
 *   twice), and after a failed try `failed` (JSON array of processor names), `error`,
 *   `attempts`. A try that takes the lock writes none: the lock holds its token. Deleted when
 *   the delivery completes; kept `retentionSeconds` while it is retried or dead-lettered, which
 *   is where `inlet replay` reads the failed processors from.
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
  /** The BullMQ job that carries it, when there is one. */
  jobId?: string;
}

/** What {@link PredictionLedger.begin} decided. */
export type BeginOutcome =
  | { kind: 'skip'; recordedStatus: string }
  | { kind: 'done'; recordedStatus: string }
  | { kind: 'busy'; waits: number }
  | { kind: 'run'; pending: string[] };

/** finishDelivery-3's arguments for one delivery (see its header). */
export interface FinishArgs {
  predictionId: string;
  webhookId: string;
  /** The try's token, or empty when it holds no lock. */
  token: string;
  /** The processor whose success to record, or empty. */
  processor: string;
  terminal: '0' | '1';
}

/**
 * What carries a delivery's finish in the call that completes its job (LedgerOnFetch,
 * ledger-on-fetch.ts); `alone` sends it as a call of its own.
 */
export interface FinishCarrier {
  finishWithJob(jobId: string, args: FinishArgs, alone: () => Promise<number>): Promise<number>;
}

export interface LedgerOptions {
  prefix: string;
  /** Lifetime of the prediction lock without renewal (the worker's lock duration). */
  lockTtlMs: number;
  /** How long ledger entries outlive their last write. */
  retentionSeconds: number;
}

/** Reads beginDelivery-3's answer, from its own call or from a fetch script's (fetch-and-begin.ts). */
export function beginOutcome(reply: string[]): BeginOutcome {
  const [kind, detail = '', ...pending] = reply;
  if (kind === 'skip' || kind === 'done') return { kind, recordedStatus: detail };
  if (kind === 'busy') return { kind, waits: Number(detail) };
  return { kind: 'run', pending };
}

/** A held prediction lock, renewed until {@link LockHold.stop}. */
export interface LockHold {
  stop(): void;
}

/**
 * The per-prediction ledger in Redis that makes processors' guarantees hold across any number of
 * worker processes: which terminal processors succeeded once per prediction, which processors
 * succeeded on each delivery, and one lock per prediction so that its processors never run at
 * the same time. Every step that must be atomic is one script (src/core/scripts/) or one MULTI,
 * and every step is safe to resend after a reconnect. It stores; it does not count (the worker's
 * figures are kept by CountedLedger, counted-ledger.ts).
 *
 * How a try ends, and the prediction lock (docs/design.md has the whole table):
 *
 * | begin answers | the try then                                | prediction lock            |
 * |---------------|---------------------------------------------|----------------------------|
 * | skip          | completes, counted `skipped_after_terminal` | never taken                |
 * | done          | completes (`already_done`)                  | never taken                |
 * | busy          | waits in the delayed set, no attempt used   | never taken                |
 * | run → all ok  | {@link complete}, which records the last success | released              |
 * | run → failed  | {@link fail}                                | released, unless a timed-out run may still be going: then it lapses |
 * | run → stopping| {@link release} and hand back               | released; kept to lapse if the processor ignored the abort |
 * | run → lost    | fails the try                               | not ours: every release checks the token |
 * | worker dies   | BullMQ's stall check hands the job on       | lapses after `lockTtlMs`   |
 */
export class PredictionLedger {
  constructor(
    private readonly redis: Redis,
    private readonly options: LedgerOptions,
    /**
     * The worker's fetches (ledger-on-fetch.ts): when given, {@link complete} goes out with
     * BullMQ's completion of the delivery's job, in the same script call.
     */
    private readonly onFetch?: FinishCarrier,
  ) {
    defineScripts(
      redis,
      beginDelivery3,
      markProcessorDone2,
      finishDelivery3,
      renewPredictionLock2,
      releasePredictionLock1,
    );
  }

  /**
   * Decides, in one atomic step, whether a delivery is skipped, already done, must wait, or runs
   * (and then holds the prediction lock under `token`, unique to this try). See beginDelivery-3.
   */
  async begin(delivery: DeliveryRef, token: string, processors: string[]): Promise<BeginOutcome> {
    const { prefix, lockTtlMs, retentionSeconds } = this.options;
    const reply = await this.redis.beginDelivery(
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
      ...processors,
    );
    return beginOutcome(reply);
  }

  /**
   * Records a processor's success in the try `token`. Resolves `false` only
   * when another try had recorded the terminal processor's success for the prediction: it really
   * ran twice. A resend of this call after a reconnect still resolves `true`.
   */
  async markDone(delivery: DeliveryRef, processor: string, token: string): Promise<boolean> {
    const { prefix, retentionSeconds } = this.options;
    const first = await this.redis.markProcessorDone(
      ledgerKeys.prediction(prefix, delivery.predictionId),
      ledgerKeys.delivery(prefix, delivery.webhookId),
      processor,
      delivery.terminal ? '1' : '0',
      delivery.webhookId,
      retentionSeconds,
      token,
    );
    return first === 1;
  }

  /**
   * Keeps the prediction lock alive while processors run: renews it every third of its lifetime,
   * so two renewals can fail (a Redis blip) before it lapses. `onLost` is called once, when a
   * renewal finds the lock gone: another delivery may now run processors of the prediction.
   * Each renewal also renews the prediction's record's expiry (renewPredictionLock-2).
   */
  hold(predictionId: string, token: string, onLost: () => void): LockHold {
    const { prefix, lockTtlMs, retentionSeconds } = this.options;
    const lock = ledgerKeys.lock(prefix, predictionId);
    const record = ledgerKeys.prediction(prefix, predictionId);
    let lost = false;
    const timer = setInterval(
      () => {
        this.redis.renewPredictionLock(lock, record, token, lockTtlMs, retentionSeconds).then(
          (renewed) => {
            if (renewed !== 0 || lost) return;
            lost = true;
            clearInterval(timer);
            onLost();
          },
          () => undefined, // Redis away: the next tick tries again; the lock may still lapse.
        );
      },
      Math.max(Math.floor(lockTtlMs / 3), 50),
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
   * Ends a delivery that has nothing left to do: records `processor`'s success when given (the
   * try's last processor, see finishDelivery-3), releases the lock when `token` holds it and
   * forgets the delivery's progress. Resolves `false` only when another try had recorded that
   * terminal processor's success for the prediction, as {@link markDone} does.
   *
   * In a worker the call goes out with BullMQ's completion of the delivery's job, which comes in
   * the microtasks after the dispatcher returns: one script call for both, the end recorded
   * first (fetch-and-begin.ts). A worker does not wait for the answer before handing BullMQ the
   * job's result. Sent on the ledger's own connection when no completion takes it in that turn
   * of the event loop, or when the call that carried it failed.
   */
  complete(delivery: DeliveryRef, token: string | undefined, processor?: string): Promise<boolean> {
    const { prefix, retentionSeconds } = this.options;
    const { predictionId, webhookId } = delivery;
    const args = {
      predictionId,
      webhookId,
      token: token ?? '',
      processor: processor ?? '',
      terminal: delivery.terminal ? '1' : '0',
    } as const;
    const alone = () =>
      this.redis.finishDelivery(
        ledgerKeys.prediction(prefix, predictionId),
        ledgerKeys.lock(prefix, predictionId),
        ledgerKeys.delivery(prefix, webhookId),
        args.token,
        args.processor,
        args.terminal,
        webhookId,
        retentionSeconds,
      );
    const answered =
      this.onFetch && delivery.jobId !== undefined
        ? this.onFetch.finishWithJob(delivery.jobId, args, alone)
        : alone();
    return answered.then((first) => first === 1);
  }

  /**
   * Ends a failed try: releases the lock when `token` is given, and keeps which processors
   * failed with the error (read by `inlet replay`).
   */
  async fail(
    delivery: DeliveryRef,
    token: string | undefined,
    failure: { processors: string[]; error: string; attempts: number },
  ): Promise<void> {
    const { prefix, retentionSeconds } = this.options;
    const deliveryKey = ledgerKeys.delivery(prefix, delivery.webhookId);
    const tx = this.redis.multi();
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
  }

  /** Releases the lock of a delivery handed back to the queue. */
  async release(delivery: DeliveryRef, token: string): Promise<void> {
    await this.redis.releasePredictionLock(
      ledgerKeys.lock(this.options.prefix, delivery.predictionId),
      token,
    );
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
