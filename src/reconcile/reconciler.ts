import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import { type Config, ConfigError } from '../core/config.js';
import type { DeliveryJob } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { closeRedis, connectRedis, type RedisClient as Redis } from '../core/redis.js';
import { closeQueues, openShardQueues } from '../core/shard-queues.js';
import {
  allShards,
  globalPrefix,
  layoutOf,
  queuePrefix,
  recordPrefixOf,
  type ShardLayout,
} from '../core/shards.js';
import { ShardedEnqueuer } from '../ingest/sharded-enqueuer.js';
import { Lease } from './lease.js';
import { type PassReport, runReconcilePass } from './reconcile-pass.js';
import { reconcileKeys } from './reconcile-state.js';
import { type ApiErrorKind, ReplicateClient } from './replicate-client.js';

/** Where a reconciler reports what it does (the metrics). */
export interface ReconcileObserver {
  onRequest?(call: 'list' | 'get', outcome: 'ok' | ApiErrorKind): void;
  onPass?(report: PassReport): void;
}

/**
 * The reconciler's connections and parts: Redis, the queue, the same `DeliveryEnqueuer` the
 * ingest stores webhooks with, and the lease. `close()` ends them all.
 */
export class Reconciler {
  readonly redis: Redis;
  private readonly queueRedis: Redis;
  private readonly storeRedis: Redis;
  private readonly queues: Queue<DeliveryJob>[];
  private readonly enqueuer: ShardedEnqueuer;
  private readonly layout: ShardLayout;
  readonly lease: Lease;
  private stopping = new AbortController();

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly observer: ReconcileObserver = {},
  ) {
    if (!config.REPLICATE_API_TOKEN) {
      throw new ConfigError(
        'REPLICATE_API_TOKEN is not set: the reconciler reads predictions from Replicate; create a token at https://replicate.com/account/api-tokens',
      );
    }
    this.redis = connectRedis(config, { role: 'patient', name: 'inlet:reconcile' });
    this.queueRedis = connectRedis(config, { role: 'patient', name: 'inlet:reconcile:q' });
    // As the ingest does: the store's script on a connection of its own, failing within seconds.
    this.storeRedis = connectRedis(config, {
      role: 'fail-fast',
      commandTimeoutMs: 5_000,
      name: 'inlet:reconcile:store',
    });
    for (const connection of [this.queueRedis, this.storeRedis]) {
      connection.on('error', () => undefined); // reported through `redis`, the same server
    }
    this.redis.on('error', (error) => logger.debug({ err: error.message }, 'Redis error'));
    this.layout = layoutOf(config);
    this.queues = openShardQueues(config, this.queueRedis);
    for (const queue of this.queues) queue.on('error', () => undefined);
    this.enqueuer = new ShardedEnqueuer(this.queues, this.storeRedis, config);
    this.lease = new Lease(
      this.redis,
      reconcileKeys.lease(globalPrefix(this.layout)),
      config.INLET_RECONCILE_LEASE_MS,
    );
  }

  /** One pass with a fresh request budget; `signal` cuts it short. */
  async pass(options: { dryRun?: boolean; signal?: AbortSignal } = {}): Promise<PassReport> {
    const config = this.config;
    const api = new ReplicateClient({
      baseUrl: config.REPLICATE_API_BASE_URL,
      token: config.REPLICATE_API_TOKEN as string,
      budget: config.INLET_RECONCILE_PAGE_BUDGET,
      signal: options.signal,
      onRequest: (call, outcome) => this.observer.onRequest?.(call, outcome),
    });
    const report = await runReconcilePass({
      redis: this.redis,
      prefix: globalPrefix(this.layout),
      ...(config.INLET_SHARDS > 1
        ? {
            shards: {
              queuePrefixes: allShards(this.layout).map((i) => queuePrefix(this.layout, i)),
              recordPrefixOf: (id: string) => recordPrefixOf(this.layout, id),
            },
          }
        : {}),
      api,
      store: options.dryRun ? undefined : this.enqueuer,
      windowMs: config.INLET_RECONCILE_WINDOW_SECONDS * 1000,
      graceMs: config.INLET_RECONCILE_GRACE_SECONDS * 1000,
      dryRun: options.dryRun,
    });
    this.observer.onPass?.(report);
    return report;
  }

  /**
   * Runs passes every `INLET_RECONCILE_INTERVAL_SECONDS` for as long as it holds the lease;
   * without it, tries to take it at the same interval (a standby). Returns when {@link close}
   * is called. An API or Redis failure is logged and waited out: it never ends the loop.
   */
  async run(): Promise<void> {
    const interval = this.config.INLET_RECONCILE_INTERVAL_SECONDS * 1000;
    const stop = this.stopping.signal;
    while (!stop.aborted) {
      try {
        if (await this.lease.acquire()) {
          const report = await this.pass({ signal: AbortSignal.any([stop, this.lease.signal]) });
          this.log(report);
        } else {
          this.logger.debug('another reconciler holds the lease; standing by');
        }
      } catch (error) {
        if (!stop.aborted)
          this.logger.warn({ err: (error as Error).message }, 'reconcile pass failed');
      }
      await sleep(interval, undefined, { signal: stop }).catch(() => undefined);
    }
  }

  log(report: PassReport): void {
    const { reconciled, ...rest } = report;
    const line = { ...rest, reconciled: reconciled.length };
    if (reconciled.length > 0) {
      this.logger.warn(
        { ...line, predictions: reconciled.map((r) => `${r.predictionId}:${r.status}`) },
        'reconciled predictions whose webhook was never recorded: webhooks are being lost',
      );
    } else this.logger.info(line, 'reconcile pass');
  }

  /** Stops the loop, gives the lease back and closes Redis. */
  async close(): Promise<void> {
    this.stopping.abort();
    await this.lease.release();
    await closeQueues(this.queues);
    await Promise.all([this.redis, this.queueRedis, this.storeRedis].map(closeRedis));
  }
}
