import type { Queue } from 'bullmq';
import { bullmq } from './commonjs-packages.js';
import type { Config } from './config.js';
import { type DeliveryJob, QUEUE_NAME } from './job.js';
import type { RedisClient } from './redis.js';
import { allShards, layoutOf, queuePrefix } from './shards.js';

/**
 * The BullMQ queue of every shard (src/core/shards.ts), on one connection: shard `i` is
 * `queues[i]`. With `INLET_SHARDS=1` this is the one `deliveries` queue under `INLET_PREFIX`.
 */
export function openShardQueues(
  config: Pick<Config, 'INLET_PREFIX' | 'INLET_SHARDS' | 'REDIS_CLUSTER'>,
  connection: RedisClient,
): Queue<DeliveryJob>[] {
  const layout = layoutOf(config);
  return allShards(layout).map(
    (index) =>
      new bullmq.Queue<DeliveryJob>(QUEUE_NAME, { connection, prefix: queuePrefix(layout, index) }),
  );
}

/** Closes queues without waiting on a Redis that is away. */
export async function closeQueues(queues: Queue[]): Promise<void> {
  await Promise.all(queues.map((queue) => queue.close().catch(() => undefined)));
}
