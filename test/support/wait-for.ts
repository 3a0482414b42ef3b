/**
 * How long a test waits for a condition before it gives up: a guard against hanging, long enough
 * for processes to start on a 2-core machine that runs six test files at once.
 */
export const GUARD_MS = 30_000;

/**
 * Polls `check` until it returns something truthy, and resolves with that, or throws naming
 * `what` once `timeoutMs` has passed. The deadline is a guard against hanging, never the
 * assertion: tests wait for a condition, not for a fixed time, so that a busy machine makes them
 * slower, not red. This is the suite's one polling loop.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeoutMs = GUARD_MS, intervalMs = 25 } = {},
): Promise<NonNullable<T>> {
  // A timer of our own for the whole wait: if what `check` awaits holds no handle that keeps the
  // event loop alive, the runner would cancel the test ("event loop has already resolved", seen
  // once in the compose test) instead of the wait timing out here with `what`.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    for (const end = Date.now() + timeoutMs; ; ) {
      const value = await check();
      if (value) return value as NonNullable<T>;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  } finally {
    clearInterval(keepAlive);
  }
}
