import {
  type FigureSink,
  recordProcessorRun,
  recordWorkerEvent,
  type WorkerEvent,
} from '../core/worker-figures.js';
import type { BeginOutcome, DeliveryRef, LockHold, PredictionLedger } from './prediction-ledger.js';

/** One processor run that did not succeed, for the figures. */
export interface FailedRun {
  processor: string;
  seconds: number;
}

/**
 * What the dispatcher needs of a ledger: each step of a try, with what the worker's figures
 * count at that step. {@link CountedLedger} in workers; a double in the dispatcher's tests.
 */
export interface Ledger {
  begin(delivery: DeliveryRef, token: string, processors: string[]): Promise<BeginOutcome>;
  /** Resolves `false` only when another try had recorded the terminal processor's success. */
  markDone(
    delivery: DeliveryRef,
    processor: string,
    seconds: number,
    token: string,
  ): Promise<boolean>;
  hold(predictionId: string, token: string, onLost: () => void): LockHold;
  /**
   * Ends the delivery; with `done`, records that processor's success first, in the same step.
   * Resolves `false` only when another try had recorded that terminal processor's success.
   * The dispatcher does not wait for it before handing BullMQ the job's result (see
   * PredictionLedger.complete).
   */
  complete(
    delivery: DeliveryRef,
    token: string | undefined,
    event: WorkerEvent,
    done?: { processor: string; seconds: number },
  ): Promise<boolean>;
  fail(
    delivery: DeliveryRef,
    token: string | undefined,
    failure: { processors: string[]; error: string; attempts: number; final: boolean },
    failedRuns: FailedRun[],
  ): Promise<void>;
  release(delivery: DeliveryRef, token: string, failedRuns: FailedRun[]): Promise<void>;
  /** Counts runs that did not succeed, when nothing is written to the ledger. */
  recordFailedRuns(failedRuns: FailedRun[]): void;
}

/**
 * The {@link PredictionLedger}'s steps, each counted in the worker's figures (processor runs
 * and their durations, delivery events) once Redis confirmed it. The ledger stores; this counts.
 */
export class CountedLedger implements Ledger {
  constructor(
    private readonly ledger: PredictionLedger,
    private readonly figures: FigureSink,
    private readonly prefix: string,
  ) {}

  begin(delivery: DeliveryRef, token: string, processors: string[]): Promise<BeginOutcome> {
    return this.ledger.begin(delivery, token, processors);
  }

  async markDone(
    delivery: DeliveryRef,
    processor: string,
    seconds: number,
    token: string,
  ): Promise<boolean> {
    const first = await this.ledger.markDone(delivery, processor, token);
    recordProcessorRun(this.figures, this.prefix, processor, true, seconds);
    return first;
  }

  hold(predictionId: string, token: string, onLost: () => void): LockHold {
    return this.ledger.hold(predictionId, token, onLost);
  }

  async complete(
    delivery: DeliveryRef,
    token: string | undefined,
    event: WorkerEvent,
    done?: { processor: string; seconds: number },
  ): Promise<boolean> {
    const first = await this.ledger.complete(delivery, token, done?.processor);
    if (done) recordProcessorRun(this.figures, this.prefix, done.processor, true, done.seconds);
    recordWorkerEvent(this.figures, this.prefix, event);
    return first;
  }

  async fail(
    delivery: DeliveryRef,
    token: string | undefined,
    failure: { processors: string[]; error: string; attempts: number; final: boolean },
    failedRuns: FailedRun[],
  ): Promise<void> {
    await this.ledger.fail(delivery, token, failure);
    this.recordFailedRuns(failedRuns);
    recordWorkerEvent(this.figures, this.prefix, failure.final ? 'dead_lettered' : 'retried');
  }

  async release(delivery: DeliveryRef, token: string, failedRuns: FailedRun[]): Promise<void> {
    await this.ledger.release(delivery, token);
    this.recordFailedRuns(failedRuns);
  }

  recordFailedRuns(failedRuns: FailedRun[]): void {
    for (const run of failedRuns) {
      recordProcessorRun(this.figures, this.prefix, run.processor, false, run.seconds);
    }
  }
}
