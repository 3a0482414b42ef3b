import type { Logger } from '../core/logger.js';
import { PREDICTION_STATUSES, type Prediction, type PredictionStatus } from '../core/prediction.js';

/**
 * What a processor gets besides the prediction: where the delivery came from, which try this is,
 * a logger and a signal to stop.
 */
export interface ProcessorContext {
  /** The delivery's `webhook-id`; unique per message, the same on Replicate's retries of it. */
  readonly webhookId: string;
  /** Which try of this delivery this is, from 1; a busy prediction's wait does not count. */
  readonly attempt: number;
  /** A pino logger whose lines already carry `webhookId`, `predictionId` and `processor`. */
  readonly log: Logger;
  /**
   * Aborted when the worker stops (after its grace period) or loses its hold on the job. Pass it
   * to `fetch` and other cancellable work: a processor that stops on it is run again later, by
   * this or another worker; one that resolves anyway is recorded as a success.
   */
  readonly signal: AbortSignal;
  /** The webhook URL's query parameters, e.g. `?customId=123`; repeated names are arrays. */
  readonly query: Readonly<Record<string, string | string[]>>;
  /** When the ingest received the delivery. */
  readonly receivedAt: Date;
  /**
   * `reconcile` when `inlet reconcile` made this delivery from Replicate's API because no webhook
   * of the prediction's terminal state was recorded; `webhook` otherwise.
   */
  readonly source: 'webhook' | 'reconcile';
}

/**
 * A processor: user code run on each prediction delivery, with inlet's guarantees (see the
 * README's "Guarantees"). A processor module's default export is one of these.
 */
export interface Processor<Input = Record<string, unknown>, Output = unknown> {
  /**
   * Unique among the processors of a worker, and part of the ledger's keys: renaming a processor
   * makes inlet treat it as new, so it runs again for predictions it already handled.
   */
  readonly name: string;
  /**
   * Which prediction states it wants. Terminal ones (`succeeded`, `failed`, `canceled`,
   * `aborted`) run once per prediction; others once per delivery.
   * @defaultValue every state
   */
  readonly statuses?: readonly PredictionStatus[];
  /**
   * How long one run may take. Past it `ctx.signal` is aborted and the run counts as failed
   * (and is retried); a run that ignores the signal is abandoned 2 s later.
   * @defaultValue `INLET_PROCESSOR_TIMEOUT_MS` (10 minutes)
   */
  readonly timeoutMs?: number;
  /**
   * Does the work. Resolving counts as success and is recorded; throwing is retried with
   * backoff, or dead-letters the delivery at once for an `UnrecoverableError`.
   */
  handle(prediction: Prediction<Input, Output>, ctx: ProcessorContext): Promise<void> | void;
}

/**
 * Declares a processor with its types checked; returns it unchanged.
 *
 * @example
 * ```ts
 * import { defineProcessor } from 'inlet-webhooks';
 * export default defineProcessor({
 *   name: 'save-outputs',
 *   statuses: ['succeeded'],
 *   async handle(prediction, ctx) {
 *     ctx.log.info({ output: prediction.output }, 'saving');
 *   },
 * });
 * ```
 */
export function defineProcessor<Input = Record<string, unknown>, Output = unknown>(
  processor: Processor<Input, Output>,
): Processor<Input, Output> {
  return processor;
}

/** True when `processor` wants deliveries in `status`. */
export function wantsStatus(processor: Processor, status: PredictionStatus): boolean {
  return processor.statuses === undefined || processor.statuses.includes(status);
}

/** The names of the processors that want each status, in their order. */
export function wantedByStatus(processors: readonly Processor[]): Map<PredictionStatus, string[]> {
  return new Map(
    PREDICTION_STATUSES.map((status) => [
      status,
      processors.filter((p) => wantsStatus(p, status)).map((p) => p.name),
    ]),
  );
}
