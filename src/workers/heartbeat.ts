import { rmSync } from 'node:fs';
import { stat, utimes, writeFile } from 'node:fs/promises';

/** How often a live worker refreshes its heartbeat file. */
export const HEARTBEAT_INTERVAL_MS = 2_000;

/** The age past which `inlet healthcheck` calls a heartbeat stale: five missed beats. */
export const HEARTBEAT_MAX_AGE_MS = 10_000;

/**
 * A worker's liveness on disk, for a container healthcheck (`inlet healthcheck <file>`): every
 * `intervalMs`, while `alive()` is true (the worker runs and its Redis connection is ready), the
 * file's modification time is set to now. A lost Redis or a blocked event loop lets it go stale;
 * `stop()` removes it. Writes that fail are retried on the next beat, never thrown.
 */
export class WorkerHeartbeat {
  private readonly timer: NodeJS.Timeout;
  private created = false;
  private stopped = false;

  constructor(
    private readonly path: string,
    private readonly alive: () => boolean,
    intervalMs = HEARTBEAT_INTERVAL_MS,
  ) {
    this.timer = setInterval(() => void this.beat(), intervalMs);
    this.timer.unref();
    void this.beat();
  }

  private async beat(): Promise<void> {
    if (this.stopped || !this.alive()) return;
    const now = new Date();
    try {
      if (this.created) await utimes(this.path, now, now);
      else {
        await writeFile(this.path, 'inlet worker heartbeat\n');
        this.created = true;
      }
    } catch {
      this.created = false;
    }
    // A beat that was writing while `stop()` ran must not leave the file behind.
    if (this.stopped) rmSync(this.path, { force: true });
  }

  /** Stops beating and removes the file, so that a stopped worker is never reported healthy. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    rmSync(this.path, { force: true });
  }
}

/**
 * Why the heartbeat at `path` is not fresh, in one line, or `undefined` when it was refreshed
 * within `maxAgeMs`.
 */
export async function heartbeatProblem(
  path: string,
  maxAgeMs = HEARTBEAT_MAX_AGE_MS,
): Promise<string | undefined> {
  const stats = await stat(path).catch(() => undefined);
  if (!stats) return `no heartbeat at ${path}: the worker is not running or not connected yet`;
  const age = Date.now() - stats.mtimeMs;
  if (age > maxAgeMs) {
    return `heartbeat ${Math.round(age / 1000)} s old: the worker has lost Redis or is stuck`;
  }
  return undefined;
}
