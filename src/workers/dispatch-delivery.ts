import type { Job } from 'bullmq';
import { bullmq } from '../core/commonjs-packages.js';
import type { DeliveryJob } from '../core/job.js';
import { type Logger, logLine } from '../core/logger.js';
import { isPredictionStatus, isTerminal, type PredictionStatus } from '../core/prediction.js';
import type { WorkerEvent } from '../core/worker-figures.js';
import { busyDelay, MAX_BACKOFF_MS } from './backoff.js';
import type { FailedRun, Ledger } from './counted-ledger.js';
import type { LazyAbort } from './lazy-abort.js';
import { type FetchedBegin, tryToken } from './ledger-on-fetch.js';
import { type BeginOutcome, beginOutcome, type DeliveryRef } from './prediction-ledger.js';
import { type Processor, type ProcessorContext, wantedByStatus } from './processor.js';
import { runProcessorIn } from './run-processor.js';
import { type RunningDelivery, runningEntry, type StopReason } from './running-delivery.js';

/** What a completed delivery job returns; the dashboard shows it as the job's result. */
export type DeliveryResult =
  | { outcome: 'processed'; ran: string[] }
  | { outcome: 'already_done' }
  | { outcome: 'skipped_after_terminal'; recordedStatus: string };

/** What one try of a delivery's processors came to. */
interface TryOutcome {
  ran: string[];
  /** Milliseconds each processor that succeeded took, for the delivery's log line. */
  ms: Record<string, number>;
  failures: Array<{ processor: string; error: Error }>;
  failedRuns: FailedRun[];
  /** A processor timed out and may still be running: the prediction lock must lapse, not go. */
  abandoned: boolean;
  /**
   * The last processor's success when the try ran cleanly to its end: not recorded yet, because
   * completing the delivery records it in the same script call (finishDelivery-3).
   */
  unrecorded?: { processor: string; seconds: number };
}

export interface DispatcherOptions {
  ledger: Ledger;
  processors: Processor[];
  logger: Logger;
  /** A processor's timeout unless it sets its own (`INLET_PROCESSOR_TIMEOUT_MS`). */
  timeoutMs: number;
  /**
   * The ledger's decisions taken by the scripts that fetched the jobs (ledger-on-fetch.ts); a job
   * without one is decided by {@link Ledger.begin}, one round trip more.
   */
  fetched?: { take(job: Job): FetchedBegin | undefined };
}

/**
 * Runs the processors of one delivery job under the ledger's rules: skips what the ledger says is
 * done or stale, waits its turn when the prediction is busy (without using up an attempt), runs
 * the rest one after another and records each success before the next starts.
 */
export class DeliveryDispatcher {
  private readonly byName: Map<string, Processor>;
  /** The processors that want each status, in order: the same for every delivery. */
  private readonly wantedBy: Map<PredictionStatus, string[]>;
  private readonly running = new Map<string, RunningDelivery>();
  private stopping = false;

  constructor(private readonly options: DispatcherOptions) {
    this.byName = new Map(options.processors.map((p) => [p.name, p]));
    this.wantedBy = wantedByStatus(options.processors);
  }

  /** Deliveries whose processors are running now. */
  get size(): number {
    return this.running.size;
  }

  /** The BullMQ processor function. */
  async dispatch(job: Job<DeliveryJob>, token = ''): Promise<DeliveryResult> {
    // Taken first, so that a job that turns out not to be a delivery leaves nothing behind.
    const fetched = this.options.fetched?.take(job);
    const delivery = deliveryRef(job);
    // The delivery's child logger is made on first use: a processed delivery logs one line,
    // written from the process logger with the same fields (a child per delivery was a
    // measurable share of the worker's CPU).
    let child: Logger | undefined;
    const log: LazyLog = () => {
      child ??= this.options.logger.child(fields(delivery));
      return child;
    };
    if (this.stopping) {
      // The fetch took the prediction's lock for a try that will not run: give it back, or let
      // it lapse when Redis does not answer.
      if (fetched?.reply[0] === 'run') {
        await this.options.ledger.release(delivery, fetched.token, []).catch(() => undefined);
      }
      return this.handBack(job, token, log, 'worker stopping');
    }

    const wanted = this.wantedBy.get(delivery.status) ?? [];
    let lockToken: string;
    let begun: BeginOutcome;
    if (fetched) {
      lockToken = fetched.token;
      begun = beginOutcome(fetched.reply);
    } else {
      lockToken = tryToken(token);
      begun = await this.options.ledger.begin(delivery, lockToken, wanted);
    }
    switch (begun.kind) {
      case 'skip': {
        const conflict = delivery.terminal;
        log()[conflict ? 'warn' : 'info'](
          { status: delivery.status, recordedStatus: begun.recordedStatus },
          conflict
            ? 'terminal delivery disagrees with the recorded terminal state: recorded, not dispatched'
            : 'delivery arrived after the terminal state: recorded, not dispatched',
        );
        this.finish(delivery, undefined, 'skipped_after_terminal', log);
        return { outcome: 'skipped_after_terminal', recordedStatus: begun.recordedStatus };
      }
      case 'done':
        // Every delivery ends in one worker line at info, even one no processor wants.
        log().info(
          { status: delivery.status, ran: [] },
          wanted.length === 0
            ? 'delivery processed: no processor wants this status'
            : 'every processor already succeeded: nothing to run',
        );
        this.finish(delivery, undefined, 'processed', log);
        return { outcome: 'already_done' };
      case 'busy': {
        const delay = busyDelay(begun.waits);
        log().debug({ waits: begun.waits, delay }, 'prediction busy on another delivery: waiting');
        await job.moveToDelayed(Date.now() + delay, token);
        throw new bullmq.DelayedError();
      }
      case 'run':
        return this.runPending(job, token, delivery, lockToken, begun.pending, log);
    }
  }

  /**
   * Aborts `ctx.signal` of every running delivery; each is handed back to the queue once its
   * processor returns. Deliveries dispatched from now on are handed back at once.
   */
  abortAll(): void {
    this.stopping = true;
    for (const entry of this.running.values()) this.stop(entry, 'shutdown');
  }

  /** Stops waiting for processors that ignored {@link abortAll}: their jobs go back now. */
  forceHandBack(): void {
    for (const entry of this.running.values()) entry.force();
  }

  /** Aborts the deliveries of jobs whose BullMQ lock could not be renewed. */
  lockLost(jobIds: string[]): void {
    for (const id of jobIds) {
      const entry = this.running.get(id);
      if (entry) this.stop(entry, 'lock_lost');
    }
  }

  private stop(entry: RunningDelivery, reason: StopReason): void {
    entry.stopReason ??= reason;
    entry.abort.abort(new Error(reason === 'shutdown' ? 'worker stopping' : 'lock lost'));
  }

  private async runPending(
    job: Job<DeliveryJob>,
    token: string,
    delivery: DeliveryRef,
    lockToken: string,
    pending: string[],
    log: LazyLog,
  ): Promise<DeliveryResult> {
    const entry = runningEntry();
    const hold = this.options.ledger.hold(delivery.predictionId, lockToken, () => {
      log().error('the prediction lock lapsed while processors ran; stopping this try');
      this.stop(entry, 'lock_lost');
    });
    const key = job.id ?? delivery.webhookId;
    this.running.set(key, entry);
    let outcome: TryOutcome;
    try {
      outcome = await this.runProcessors(job, delivery, lockToken, entry, pending, log);
    } finally {
      hold.stop();
      this.running.delete(key);
    }
    const { ran, ms, failures, failedRuns, abandoned } = outcome;
    const clean = !entry.wasForced && !entry.stopReason && failures.length === 0;
    if (outcome.unrecorded && !clean) {
      // Stopped after the last success was left to complete's call: record it on its own.
      await this.markDone(delivery, outcome.unrecorded, lockToken, log);
      outcome.unrecorded = undefined;
    }

    if (entry.wasForced) {
      // The processor may still be running here: keep the prediction lock (it lapses on its own)
      // so that no other worker starts it alongside.
      this.options.ledger.recordFailedRuns(failedRuns);
      return this.handBack(job, token, log, 'processor ignored the abort');
    }
    if (entry.stopReason === 'shutdown') {
      await this.options.ledger.release(delivery, lockToken, failedRuns);
      return this.handBack(job, token, log, 'worker stopping');
    }
    if (entry.stopReason === 'lock_lost') {
      failures.push({ processor: '(lock)', error: new Error('lost its lock while running') });
    }
    if (failures.length > 0) {
      const release = abandoned ? undefined : lockToken;
      return this.failTry(job, delivery, release, failures, failedRuns, log);
    }
    this.finish(delivery, lockToken, 'processed', log, outcome.unrecorded);
    // One line per delivery at info, as on the ingest; each processor's own line is at debug.
    // The fields written out, not spread from fields(): a spread cost 2 µs a line in-process.
    const { webhookId, predictionId, status } = delivery;
    logLine(
      this.options.logger,
      'info',
      { webhookId, predictionId, status, ran, ms },
      'delivery processed',
    );
    return { outcome: 'processed', ran };
  }

  /**
   * Runs the pending processors one after another. Each success is recorded before the next
   * starts, so a crash later in the list never makes it run again; a failure does not stop the
   * others. Stops early when the delivery is aborted. The last success of a clean try is left
   * in {@link TryOutcome.unrecorded} for the delivery's completion to record in the same call.
   */
  private async runProcessors(
    job: Job<DeliveryJob>,
    delivery: DeliveryRef,
    lockToken: string,
    entry: RunningDelivery,
    pending: string[],
    log: LazyLog,
  ): Promise<TryOutcome> {
    const outcome: TryOutcome = { ran: [], ms: {}, failures: [], failedRuns: [], abandoned: false };
    for (let i = 0; i < pending.length; i++) {
      const name = pending[i] as string;
      if (entry.abort.aborted) break;
      const processor = this.byName.get(name) as Processor;
      const ctx = this.context(job, processor, log);
      const result = await runProcessorIn(processor, job.data.prediction, ctx.forRun, {
        follow: (listener) => entry.abort.follow(listener),
        onForced: entry.onForced,
        timeoutMs: processor.timeoutMs ?? this.options.timeoutMs,
      });
      const ms = Math.round(result.seconds * 1000);
      if (!result.ok) {
        outcome.failedRuns.push({ processor: name, seconds: result.seconds });
        if (entry.wasForced) break;
        outcome.failures.push({ processor: name, error: result.error });
        if (entry.stopReason) ctx.log.info({ ms, why: entry.stopReason }, 'processor stopped');
        else
          ctx.log.warn(
            { err: result.error, ms, attempt: job.attemptsMade + 1 },
            'processor failed',
          );
        // It may still be running: nothing else of this prediction may start beside it.
        outcome.abandoned = result.abandoned;
        if (result.abandoned) break;
        continue;
      }
      outcome.ran.push(name);
      outcome.ms[name] = ms;
      if (this.options.logger.isLevelEnabled('debug')) ctx.log.debug({ ms }, 'processor succeeded');
      const success = { processor: name, seconds: result.seconds };
      if (i === pending.length - 1 && !entry.abort.aborted && !outcome.failures.length) {
        // The try's last step: complete() records it with the delivery's end, in one call.
        outcome.unrecorded = success;
      } else {
        await this.markDone(delivery, success, lockToken, log);
      }
    }
    return outcome;
  }

  /**
   * Ends the delivery in the ledger (with the try's last success, when given) without waiting
   * for Redis's answer: the ledger sends it on the connection BullMQ completes the job on next,
   * so Redis records the end first and both leave in one write (PredictionLedger.complete).
   * The answer comes later: a second run of a terminal processor, or a call Redis refused twice
   * (the job is completed anyway: its processors ran), is logged at error then.
   */
  private finish(
    delivery: DeliveryRef,
    lockToken: string | undefined,
    event: WorkerEvent,
    log: LazyLog,
    last?: { processor: string; seconds: number },
  ): void {
    this.options.ledger.complete(delivery, lockToken, event, last).then(
      (first) => {
        if (!first) ranTwice(log, last?.processor);
      },
      (error: Error) =>
        log().error(
          { err: error.message, processor: last?.processor },
          last
            ? 'could not record the last success in the ledger: a later delivery of this prediction may run that processor again'
            : 'could not record the end of the delivery in the ledger: its progress expires on its own',
        ),
    );
  }

  /** Records one processor's success before the next one starts. */
  private async markDone(
    delivery: DeliveryRef,
    success: { processor: string; seconds: number },
    lockToken: string,
    log: LazyLog,
  ): Promise<void> {
    const { processor, seconds } = success;
    const first = await this.options.ledger.markDone(delivery, processor, seconds, lockToken);
    if (!first) ranTwice(log, processor);
  }

  private async failTry(
    job: Job<DeliveryJob>,
    delivery: DeliveryRef,
    lockToken: string | undefined,
    failures: Array<{ processor: string; error: Error }>,
    failedRuns: FailedRun[],
    log: LazyLog,
  ): Promise<never> {
    const unrecoverable = failures.some(({ error }) => isUnrecoverable(error));
    const attempts = job.attemptsMade + 1;
    const final = unrecoverable || attempts >= (job.opts.attempts ?? 1);
    const message = failureMessage(failures);
    const processors = failures.map((f) => f.processor);
    await Promise.all([
      this.options.ledger.fail(
        delivery,
        lockToken,
        { processors, error: message, attempts, final },
        failedRuns,
      ),
      // The dashboard shows these under the job's logs; failures of the log itself are harmless.
      ...failures.map(({ processor, error }) =>
        job.log(`attempt ${attempts}: ${processor} failed: ${error.message}`).catch(() => 0),
      ),
    ]);
    const maxAttempts = job.opts.attempts ?? 1;
    const retry = final ? undefined : retryWindow(job, attempts);
    log()[final ? 'error' : 'warn'](
      { attempt: attempts, maxAttempts, failedProcessors: processors, error: message, ...retry },
      final
        ? `delivery dead-lettered after attempt ${attempts} of ${maxAttempts}`
        : `delivery failed (attempt ${attempts} of ${maxAttempts}); retrying in ${retry?.retryInMs[0]}-${retry?.retryInMs[1]} ms`,
    );
    throw unrecoverable ? new bullmq.UnrecoverableError(message) : new Error(message);
  }

  /** Puts a job back in the queue without using up an attempt. */
  private async handBack(
    job: Job<DeliveryJob>,
    token: string,
    log: LazyLog,
    why: string,
  ): Promise<never> {
    await job.moveToDelayed(Date.now(), token);
    log().info({ why }, 'delivery handed back to the queue');
    throw new bullmq.DelayedError();
  }

  /**
   * A processor run's context: `forRun` builds what the processor gets around the run's signal;
   * `log` is the same child logger. The child is made on first use: many runs never log.
   */
  private context(job: Job<DeliveryJob>, processor: Processor, log: LazyLog) {
    let child: Logger | undefined;
    const runLog = () => {
      child ??= log().child({ processor: processor.name });
      return child;
    };
    const { webhookId, query, receivedAt, source } = job.data;
    const attempt = job.attemptsMade + 1;
    return {
      get log(): Logger {
        return runLog();
      },
      forRun: (run: LazyAbort): ProcessorContext => ({
        webhookId,
        attempt,
        // A getter: the signal is made only for a processor that reads it (see LazyAbort).
        get signal(): AbortSignal {
          return run.signal;
        },
        query: query ?? {},
        receivedAt: new Date(receivedAt),
        source: source ?? 'webhook',
        get log(): Logger {
          return runLog();
        },
      }),
    };
  }
}

/** The delivery's logger, made on first use. */
type LazyLog = () => Logger;

/** The fields that name a delivery on each of its log lines. */
function fields(delivery: DeliveryRef) {
  return { webhookId: delivery.webhookId, predictionId: delivery.predictionId };
}

/** Validates what a job carries; a job that is not a delivery can never succeed. */
function deliveryRef(job: Job<DeliveryJob>): DeliveryRef {
  const data = job.data as Partial<DeliveryJob> | undefined;
  const prediction = data?.prediction;
  if (!data?.webhookId || !prediction?.id || !isPredictionStatus(prediction.status)) {
    throw new bullmq.UnrecoverableError(
      'not a delivery: the job has no webhook id, prediction id or status',
    );
  }
  return {
    webhookId: data.webhookId,
    predictionId: prediction.id,
    status: prediction.status,
    terminal: isTerminal(prediction.status),
    jobId: job.id,
  };
}

/** When the next try comes: the backoff's jittered range (see backoff.ts), in milliseconds. */
function retryWindow(job: Job<DeliveryJob>, attempts: number): { retryInMs: [number, number] } {
  const backoff = job.opts.backoff;
  const base = typeof backoff === 'object' ? (backoff.delay ?? 0) : (backoff ?? 0);
  const ceiling = Math.min(base * 2 ** Math.max(attempts - 1, 0), MAX_BACKOFF_MS);
  return { retryInMs: [Math.round(ceiling / 2), Math.round(ceiling)] };
}

/** The error line for a terminal processor whose success another try had recorded. */
function ranTwice(log: LazyLog, processor: string | undefined): void {
  (processor ? log().child({ processor }) : log()).error(
    'processor ran a second time for this prediction (a lock lapsed)',
  );
}

function isUnrecoverable(error: Error): boolean {
  return error instanceof bullmq.UnrecoverableError || error.name === 'UnrecoverableError';
}

/** The job's `failedReason`: which processors failed and why, on one line. */
function failureMessage(failures: Array<{ processor: string; error: Error }>): string {
  const parts = failures.map(({ processor, error }) => `${processor}: ${oneLine(error.message)}`);
  const text =
    parts.length === 1
      ? (parts[0] as string)
      : `${parts.length} processors failed: ${parts.join('; ')}`;
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}

function oneLine(message: string): string {
  return message.replace(/\s+/g, ' ').trim() || 'no message';
}
