/**
 * Book-keeping for a delivery whose processors run in this process: how to abort them, and how
 * to stop waiting for one that ignores the abort.
 */
import { LazyAbort } from './lazy-abort.js';

/** Why the processors of a running delivery are being stopped. */
export type StopReason = 'shutdown' | 'lock_lost';

/** A delivery whose processors are running in this process. */
export interface RunningDelivery {
  /** Aborting it aborts the running processor's `ctx.signal`, and every later run's. */
  abort: LazyAbort;
  stopReason?: StopReason;
  /** Registers how to stop waiting for the running processor; returns the way to unregister. */
  onForced(stop: (error: Error) => void): () => void;
  /** Stops waiting for a processor that ignores its aborted signal. */
  force(): void;
  wasForced: boolean;
}

class ForcedHandBack extends Error {
  override name = 'ForcedHandBack';
}

/**
 * A fresh entry: not aborted, not forced. No promise or signal is made for a delivery that is
 * never stopped, the common case.
 */
export function runningEntry(): RunningDelivery {
  let stopWaiting: ((error: Error) => void) | undefined;
  const entry: RunningDelivery = {
    abort: new LazyAbort(),
    wasForced: false,
    onForced: (stop) => {
      if (entry.wasForced) {
        stop(new ForcedHandBack('handed back while the processor still ran'));
        return () => undefined;
      }
      stopWaiting = stop;
      return () => {
        if (stopWaiting === stop) stopWaiting = undefined;
      };
    },
    force: () => {
      if (entry.wasForced) return;
      entry.wasForced = true;
      stopWaiting?.(new ForcedHandBack('handed back while the processor still ran'));
    },
  };
  return entry;
}
