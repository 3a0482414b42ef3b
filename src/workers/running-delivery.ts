/**
 * Book-keeping for a delivery whose processors run in this process: how to abort them, and how
 * to stop waiting for one that ignores the abort.
 */

/** Why the processors of a running delivery are being stopped. */
export type StopReason = 'shutdown' | 'lock_lost';

/** A delivery whose processors are running in this process. */
export interface RunningDelivery {
  controller: AbortController;
  stopReason?: StopReason;
  /** Rejects to stop waiting for a processor that ignores its aborted signal. */
  forced: Promise<never>;
  force(): void;
  wasForced: boolean;
}

class ForcedHandBack extends Error {
  override name = 'ForcedHandBack';
}

/** A fresh entry: not aborted, not forced. */
export function runningEntry(): RunningDelivery {
  let reject: (error: Error) => void = () => undefined;
  const forced = new Promise<never>((_, fail) => {
    reject = fail;
  });
  forced.catch(() => undefined);
  const entry: RunningDelivery = {
    controller: new AbortController(),
    forced,
    wasForced: false,
    force: () => {
      entry.wasForced = true;
      reject(new ForcedHandBack('handed back while the processor still ran'));
    },
  };
  return entry;
}
