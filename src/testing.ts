/**
 * Helpers for your processors' unit tests: `import { … } from 'inlet-webhooks/testing'`.
 * No Redis, no queue: a processor is a plain object, and these run it the way a worker would.
 * @packageDocumentation
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from './core/logger.js';
import { PREDICTION_STATUSES, type Prediction, type PredictionStatus } from './core/prediction.js';
import {
  newPredictionId,
  newWebhookId,
  type SampleOptions,
  samplePrediction,
} from './core/sample-prediction.js';
import { type Processor, type ProcessorContext, wantsStatus } from './workers/processor.js';
import { runProcessor } from './workers/run-processor.js';

export { newPredictionId, newWebhookId, type SampleOptions, samplePrediction };

/**
 * One prediction per status, all with the same id, as Replicate would deliver each state:
 * `succeeded` has an output (a list of image URLs), `failed` an error, and so on.
 */
export function samplePredictions(
  options: Omit<SampleOptions, 'status'> = {},
): Record<PredictionStatus, Prediction> {
  const id = options.id ?? newPredictionId();
  const createdAt = options.createdAt ?? new Date(Date.now() - 4_000);
  return Object.fromEntries(
    PREDICTION_STATUSES.map((status) => [
      status,
      samplePrediction({ ...options, id, createdAt, status }),
    ]),
  ) as Record<PredictionStatus, Prediction>;
}

/** A line the processor logged through `ctx.log`: pino's JSON object (`level`, `msg`, fields). */
export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

/** A {@link ProcessorContext} for tests, with what the processor logged. */
export interface TestContext extends ProcessorContext {
  /** Every line logged through `ctx.log`, at every level, as parsed JSON. */
  readonly logs: LogRecord[];
}

/** What a test may set on the context; the rest gets test values. */
export type ContextOverrides = Partial<
  Pick<ProcessorContext, 'webhookId' | 'attempt' | 'signal' | 'query' | 'receivedAt' | 'source'>
>;

/**
 * A context double: `webhookId` a fresh `msg_…`, `attempt` 1, a `signal` that never aborts
 * unless you pass your own, no `query`, `source` `'webhook'`, and a `log` that records into `ctx.logs`.
 */
export function createTestContext(overrides: ContextOverrides = {}): TestContext {
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as LogRecord);
      }
      done();
    },
  });
  const webhookId = overrides.webhookId ?? newWebhookId();
  const log: Logger = pino({ level: 'trace', base: { webhookId } }, sink);
  return {
    webhookId,
    attempt: overrides.attempt ?? 1,
    signal: overrides.signal ?? new AbortController().signal,
    query: overrides.query ?? {},
    receivedAt: overrides.receivedAt ?? new Date(),
    source: overrides.source ?? 'webhook',
    log,
    logs,
  };
}

/** What a worker would make of one run of a processor on one delivery. */
export type RunOnceResult =
  | {
      /** The processor's `statuses` leave this state out: a worker would not run it. */
      outcome: 'skipped';
      ctx: TestContext;
    }
  | { outcome: 'succeeded'; ctx: TestContext; ms: number }
  | {
      /**
       * It threw or timed out. A worker retries it with backoff, unless `unrecoverable`: then
       * the delivery is dead-lettered at once.
       */
      outcome: 'failed';
      ctx: TestContext;
      ms: number;
      error: Error;
      unrecoverable: boolean;
      /** It ran past its `timeoutMs` (its `ctx.signal` was aborted). */
      timedOut: boolean;
    };

export interface RunOnceOptions extends ContextOverrides {
  /**
   * The timeout when the processor sets no `timeoutMs` (a worker's `INLET_PROCESSOR_TIMEOUT_MS`).
   * @defaultValue `600000`
   */
  timeoutMs?: number;
}

/**
 * Runs `processor` on `prediction` once, as a worker does: skipped when its `statuses` leave the
 * prediction's state out; `ctx.signal` aborted at its timeout; a thrown error is a result, never
 * a rejection, with whether a worker would retry it (`UnrecoverableError`: it would not).
 */
export async function runProcessorOnce(
  processor: Processor,
  prediction: Prediction,
  options: RunOnceOptions = {},
): Promise<RunOnceResult> {
  const { timeoutMs, ...overrides } = options;
  const ctx = createTestContext(overrides);
  if (!wantsStatus(processor, prediction.status)) return { outcome: 'skipped', ctx };
  const result = await runProcessor(processor, prediction, (signal) => ({ ...ctx, signal }), {
    signal: ctx.signal,
    forced: new Promise<never>(() => undefined),
    timeoutMs: processor.timeoutMs ?? timeoutMs ?? 600_000,
  });
  const ms = Math.round(result.seconds * 1000);
  if (result.ok) return { outcome: 'succeeded', ctx, ms };
  return {
    outcome: 'failed',
    ctx,
    ms,
    error: result.error,
    unrecoverable: result.error.name === 'UnrecoverableError',
    timedOut: result.error.name === 'ProcessorTimeoutError',
  };
}
