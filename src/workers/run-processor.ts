import type { Prediction } from '../core/prediction.js';
import { LazyAbort } from './lazy-abort.js';
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
export function runProcessor(
  processor: Processor,
  prediction: Prediction,
  /** Builds the run's context around its own signal. */
  context: (signal: AbortSignal) => ProcessorContext,
  options: RunOptions,
): Promise<RunResult> {
  const { signal, forced } = options;
  return runProcessorIn(processor, prediction, (run) => context(run.signal), {
    follow: (listener) => {
      if (signal.aborted) {
        listener(signal.reason);
        return () => undefined;
      }
      const follow = () => listener(signal.reason);
      signal.addEventListener('abort', follow, { once: true });
      return () => signal.removeEventListener('abort', follow);
    },
    onForced: (stop) => {
      forced.catch(stop);
      return () => undefined;
    },
    timeoutMs: options.timeoutMs,
  });
}

/** What {@link runProcessorIn} needs of the delivery a run belongs to. */
export interface RunHooks {
  /** Passes the delivery's abort on to the run's; returns the way to stop (see LazyAbort). */
  follow(listener: (reason: unknown) => void): () => void;
  /** Registers `stop`, called when the worker stops waiting for the delivery altogether. */
  onForced(stop: (error: Error) => void): () => void;
  timeoutMs: number;
}

/**
 * {@link runProcessor} for the dispatcher: the run's signal is a {@link LazyAbort}, made only
 * if the processor reads `ctx.signal`, and the run is one promise settled by whichever comes
 * first (the processor, the abandon timer, a forced hand-back) instead of a `Promise.race` of
 * three. Never rejects.
 */
export function runProcessorIn(
  processor: Processor,
  prediction: Prediction,
  context: (run: LazyAbort) => ProcessorContext,
  hooks: RunHooks,
): Promise<RunResult> {
  const run = new LazyAbort();
  const started = performance.now();
  return new Promise<RunResult>((resolve) => {
    let settled = false;
    let abandonTimer: NodeJS.Timeout | undefined;
    // Made only when it happens: an Error captures a stack, a cost every run would pay.
    let timeout: ProcessorTimeoutError | undefined;
    let unforce: () => void = () => undefined;
    const unfollow = hooks.follow((reason) => run.abort(reason));
    const settle = (result: RunResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(abandonTimer);
      unfollow();
      unforce();
      resolve(result);
    };
    const fail = (thrown: unknown, abandoned = false) => {
      let error = thrown instanceof Error ? thrown : new Error(String(thrown));
      // A processor that rethrows its own AbortError still failed because of the timeout.
      if (timeout && run.reason === timeout && !(error instanceof ProcessorTimeoutError)) {
        error = new ProcessorTimeoutError(`${timeout.message} (${error.message})`);
      }
      settle({ ok: false, seconds: (performance.now() - started) / 1000, error, abandoned });
    };
    const succeed = () => settle({ ok: true, seconds: (performance.now() - started) / 1000 });
    const timer = setTimeout(() => {
      const error = new ProcessorTimeoutError(`timed out after ${hooks.timeoutMs} ms`);
      timeout = error;
      run.abort(error);
      abandonTimer = setTimeout(
        () =>
          fail(new ProcessorTimeoutError(`${error.message} and ignored its aborted signal`), true),
        ABANDON_AFTER_ABORT_MS,
      );
    }, hooks.timeoutMs);
    unforce = hooks.onForced((error) => fail(error));
    if (settled) return;
    try {
      const handled = processor.handle(prediction, context(run));
      if (handled && typeof handled.then === 'function') handled.then(succeed, fail);
      else succeed();
    } catch (thrown) {
      fail(thrown);
    }
  });
}
