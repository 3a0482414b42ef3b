/**
 * Lets through at most one warning per `intervalMs` for each reason, counting the ones held back
 * and handing that count to the next one let through. A flood of refused deliveries (a wrong
 * secret, someone probing the URL) then shows at `LOG_LEVEL=warn` without drowning the log.
 */
export class WarnLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `undefined` when held back; else how many of this reason were held back since the last. */
  admit(reason: string): number | undefined {
    const now = this.now();
    const entry = this.last.get(reason);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    const suppressed = entry?.suppressed ?? 0;
    if (this.last.size > 100) this.last.clear(); // reasons are a fixed set; never let it grow
    this.last.set(reason, { at: now, suppressed: 0 });
    return suppressed;
  }
}
