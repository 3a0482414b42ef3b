import type { Prediction } from '../core/prediction.js';
import type { Processor, ProcessorContext } from './processor.js';

/** How one processor run ended. */
export type RunResult =
  | { ok: true; seconds: number }
  | {
      ok: false;
      seconds: number;
      error: Error;
      /**
       * The run timed out and did not return within {@link ABANDON_AFTER_ABORT_MS} of its
       * aborted signal: it may still be running, so nothing else of the prediction may start.
       */
      abandoned: boolean;
    };

export interface RunOptions {
  /** The delivery's signal: aborting it aborts the run's `ctx.signal` too. */
  signal: AbortSignal;
  /** Rejects when the worker stops waiting for the delivery altogether (forced hand-back). */
  forced: Promise<never>;
  timeoutMs: number;
}

/** After a timeout aborts `ctx.signal`, how long a run may take to return before it is abandoned. */
export const ABANDON_AFTER_ABORT_MS = 2_000;

/** A processor ran past its timeout. */
export class ProcessorTimeoutError extends Error {
  override name = 'ProcessorTimeoutError';
}

/**
 * Runs one processor with its own `ctx.signal`, aborted by the delivery's signal or by the
 * processor's timeout. Never throws: a failure is a {@link RunResult}.
 */
export async function runProcessor(
  processor: Processor,
  prediction: Prediction,
  /** Builds the run's context around its own signal. */
  context: (signal: AbortSignal) => ProcessorContext,
  options: RunOptions,
): Promise<RunResult> {
  const run = new AbortController();
  const follow = () => run.abort(options.signal.reason);
  if (options.signal.aborted) follow();
  else options.signal.addEventListener('abort', follow, { once: true });

  let abandon: (error: Error) => void = () => undefined;
  const abandoned = new Promise<never>((_, reject) => {
    abandon = reject;
  });
  abandoned.catch(() => undefined);
  let wasAbandoned = false;
  let abandonTimer: NodeJS.Timeout | undefined;
  // Made only when it happens: an Error captures a stack, a cost every run would pay.
  let timeout: ProcessorTimeoutError | undefined;
  const timer = setTimeout(() => {
    const error = new ProcessorTimeoutError(`timed out after ${options.timeoutMs} ms`);
    timeout = error;
    run.abort(error);
    abandonTimer = setTimeout(() => {
      wasAbandoned = true;
      abandon(new ProcessorTimeoutError(`${error.message} and ignored its aborted signal`));
    }, ABANDON_AFTER_ABORT_MS);
  }, options.timeoutMs);

  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    await Promise.race([
      Promise.resolve().then(() => processor.handle(prediction, context(run.signal))),
      options.forced,
      abandoned,
    ]);
    return { ok: true, seconds: seconds() };
  } catch (thrown) {
    let error = thrown instanceof Error ? thrown : new Error(String(thrown));
    // A processor that rethrows its own AbortError still failed because of the timeout.
    if (timeout && run.signal.reason === timeout && !(error instanceof ProcessorTimeoutError)) {
      error = new ProcessorTimeoutError(`${timeout.message} (${error.message})`);
    }
    return { ok: false, seconds: seconds(), error, abandoned: wasAbandoned };
  } finally {
    clearTimeout(timer);
    clearTimeout(abandonTimer);
    options.signal.removeEventListener('abort', follow);
  }
}
