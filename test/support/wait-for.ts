/**
 * How long a test waits for a condition before it gives up: a guard against hanging, long enough
 * for processes to start on a 2-core machine that runs four test files at once.
 */
export const GUARD_MS = 30_000;

/**
 * Polls `check` until it returns true, or throws naming `what` once `timeoutMs` has passed. The
 * deadline is a guard against hanging, never the assertion: tests wait for a condition, not for
 * a fixed time, so that a busy machine makes them slower, not red.
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  { timeoutMs = GUARD_MS, intervalMs = 25 } = {},
): Promise<void> {
  for (const end = Date.now() + timeoutMs; ; ) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
