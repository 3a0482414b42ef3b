import type { BackoffStrategy } from 'bullmq';

/** The backoff type deliveries are added with (see `deliveryJobOptions` in src/core/job.ts). */
export const INLET_BACKOFF = 'inlet';

/** No wait between tries grows past this, however many attempts are configured. */
export const MAX_BACKOFF_MS = 6 * 3_600_000;

/**
 * Exponential backoff with "equal" jitter: before try `n + 1` a delivery waits between half and
 * all of `base · 2^(n-1)`. Half is fixed so that a retry never comes at once after a failure;
 * half is random so that deliveries that failed together (an outage downstream) do not all come
 * back in the same instant.
 *
 * @param retry - 1 for the first retry, 2 for the second, …
 * @param baseMs - `INLET_BACKOFF_MS`
 */
export function backoffDelay(retry: number, baseMs: number, random = Math.random): number {
  const ceiling = Math.min(baseMs * 2 ** Math.max(retry - 1, 0), MAX_BACKOFF_MS);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * The Worker's `settings.backoffStrategy`: BullMQ calls it for backoff types it does not know
 * itself, with the number of attempts made so far (1 after the first failure).
 */
export const backoffStrategy: BackoffStrategy = (attemptsMade, type, _error, job) => {
  if (type !== INLET_BACKOFF) {
    throw new Error(`unknown backoff type ${type}; inlet deliveries use "${INLET_BACKOFF}"`);
  }
  const base = job?.opts.backoff;
  const baseMs = typeof base === 'object' && base.delay !== undefined ? base.delay : 1000;
  return backoffDelay(attemptsMade, baseMs);
};

/** Polls a busy prediction quickly at first, then at most once a second, with jitter. */
export function busyDelay(waits: number): number {
  const ceiling = Math.min(50 * 2 ** Math.min(Math.max(waits - 1, 0), 5), 1000);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
