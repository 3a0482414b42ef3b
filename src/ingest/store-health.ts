/**
 * Remembers whether the ingest's recent stores failed, so that `/readyz` can take an ingest out
 * of a load balancer while Redis answers pings but refuses writes (out of memory under
 * `noeviction`, a cluster answering MOVED or CROSSSLOT, a read-only replica) or stalls.
 * On the hot path it costs one assignment per stored delivery.
 */
export class StoreHealth {
  private failedInARow = 0;
  private lastFailureAt = 0;
  private lastError = '';

  /**
   * @param threshold - stores failing in a row before the ingest counts as failing. @defaultValue `3`
   * @param windowMs - how long that verdict lasts without a further failure, so that an ingest
   *   the load balancer took out (and so gets no stores) is tried again. @defaultValue `10000`
   */
  constructor(
    private readonly threshold = 3,
    private readonly windowMs = 10_000,
  ) {}

  /** A store was confirmed by Redis. */
  succeeded(): void {
    this.failedInARow = 0;
  }

  /** A store failed for a reason on Redis's side (not a 4xx of the delivery's own). */
  failed(message: string): void {
    this.failedInARow++;
    this.lastFailureAt = Date.now();
    this.lastError = message;
  }

  /** The last error, while the recent stores are failing; else `undefined`. */
  failing(now = Date.now()): string | undefined {
    if (this.failedInARow < this.threshold || now - this.lastFailureAt > this.windowMs) {
      return undefined;
    }
    return this.lastError;
  }
}
