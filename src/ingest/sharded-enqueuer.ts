import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { ioredis } from '../core/commonjs-packages.js';
import type { Config } from '../core/config.js';
import type { DeliveryJob } from '../core/job.js';
import type { RedisClient } from '../core/redis.js';
import { layoutOf, recordPrefix, shardOf, slotOf } from '../core/shards.js';
import {
  DeliveryEnqueuer,
  type EnqueueOutcome,
  StoreUnavailableError,
} from './enqueue-delivery.js';

/**
 * Stores each delivery in the queue of its prediction's shard, through that shard's
 * {@link DeliveryEnqueuer} (one script, de-duplicated by `webhook-id` within the shard's slot).
 * With `INLET_MIN_REPLICAS`, a store is confirmed only once that many replicas have it.
 */
export class ShardedEnqueuer {
  private readonly shards: DeliveryEnqueuer[];

  constructor(queues: Queue<DeliveryJob>[], redis: RedisClient, config: Config) {
    const layout = layoutOf(config);
    const confirm =
      config.INLET_MIN_REPLICAS > 0
        ? replicated(redis, config.INLET_MIN_REPLICAS, config.INLET_REPLICA_TIMEOUT_MS)
        : undefined;
    this.shards = queues.map(
      (queue, index) =>
        new DeliveryEnqueuer(queue, redis, config, {
          seenPrefix: recordPrefix(layout, index),
          confirm,
        }),
    );
  }

  /** How the shards encode jobs ({@link DeliveryEnqueuer.encoding}); all shards alike. */
  get encoding(): DeliveryEnqueuer['encoding'] {
    return (this.shards[0] as DeliveryEnqueuer).encoding;
  }

  /** {@link DeliveryEnqueuer.enqueueDelivery} on the shard of the delivery's prediction. */
  enqueueDelivery(delivery: DeliveryJob, predictionJson?: string): Promise<EnqueueOutcome> {
    const shard = this.shards[shardOf(delivery.prediction.id, this.shards.length)];
    return (shard as DeliveryEnqueuer).enqueueDelivery(delivery, predictionJson);
  }
}

/**
 * `WAIT replicas timeout` after a store, on the connection that ran it: WAIT counts the replicas
 * that have this connection's writes, and in a cluster it names no key, so ioredis would send it
 * to any node. It goes to the master that serves the store's slot now: the one the store ran on,
 * unless a `MOVED` moved the slot between the two (ioredis updates its slot map before it follows
 * the redirect, so a store that was redirected is waited for on the node that ran it).
 */
export function replicated(
  redis: RedisClient,
  replicas: number,
  timeoutMs: number,
): (routedBy: string) => Promise<void> {
  return async (routedBy) => {
    const node = redis instanceof ioredis.Cluster ? nodeServing(redis, slotOf(routedBy)) : redis;
    let reached: number;
    try {
      reached = Number(await node.wait(replicas, timeoutMs));
    } catch (error) {
      throw new StoreUnavailableError(`stored; replicas unknown: ${(error as Error).message}`);
    }
    if (reached < replicas) {
      throw new StoreUnavailableError(
        `stored, but only ${reached} of ${replicas} replicas confirmed within ${timeoutMs} ms`,
      );
    }
  };
}

function nodeServing(cluster: Cluster, slot: number): Redis {
  const nodeKey = cluster.slots[slot]?.[0];
  const node = cluster
    .nodes('master')
    .find((candidate) => `${candidate.options.host}:${candidate.options.port}` === nodeKey);
  if (!node) throw new StoreUnavailableError(`stored; no known master serves slot ${slot}`);
  return node;
}
