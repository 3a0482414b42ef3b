import { randomUUID } from 'node:crypto';
import type { RedisClient as Redis } from '../core/redis.js';

/**
 * renewLease-1: extends the lease if `token` still holds it.
 *   KEYS[1] `<prefix>:reconcile:lease`   ARGV[1] token   ARGV[2] lifetime, ms
 * Returns 1, or 0 when it lapsed or another reconciler took it.
 */
const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * releaseLease-1: gives the lease back if `token` still holds it.
 *   KEYS[1] `<prefix>:reconcile:lease`   ARGV[1] token
 */
const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface LeaseCommands {
  renewReconcileLease(key: string, token: string, ttlMs: number): Promise<number>;
  releaseReconcileLease(key: string, token: string): Promise<number>;
}

/**
 * A lease in Redis that lets one reconciler at a time run passes, across processes and hosts:
 * taken with `SET NX PX`, renewed every third of its lifetime with the holder's token, and
 * released with it. A holder that stops renewing (crash, partition) loses it after `ttlMs`;
 * `signal` is aborted as soon as a renewal finds it gone, so a pass in flight stops.
 */
export class Lease {
  readonly token = randomUUID();
  private controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly redis: Redis & LeaseCommands;

  constructor(
    redis: Redis,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {
    redis.defineCommand('renewReconcileLease', { numberOfKeys: 1, lua: RENEW_LEASE });
    redis.defineCommand('releaseReconcileLease', { numberOfKeys: 1, lua: RELEASE_LEASE });
    this.redis = redis as Redis & LeaseCommands;
  }

  /** Aborted when the lease is lost or released. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get held(): boolean {
    return this.timer !== undefined;
  }

  /** Takes the lease if nobody holds it; resolves whether it is now ours. */
  async acquire(): Promise<boolean> {
    if (this.held) return true;
    const set = await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX');
    if (set !== 'OK') return false;
    this.controller = new AbortController();
    this.timer = setInterval(() => this.renew(), Math.max(Math.floor(this.ttlMs / 3), 100));
    this.timer.unref();
    return true;
  }

  private renew(): void {
    this.redis.renewReconcileLease(this.key, this.token, this.ttlMs).then(
      (renewed) => {
        if (renewed === 0) this.lost(new Error('reconcile lease lost'));
      },
      () => undefined, // Redis away: the next tick tries again; the lease may lapse meanwhile.
    );
  }

  private lost(reason: Error): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.controller.abort(reason);
  }

  /** Gives the lease back (if still ours) and aborts {@link signal}. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.lost(new Error('reconcile lease released'));
    await this.redis.releaseReconcileLease(this.key, this.token).catch(() => undefined);
  }
}
