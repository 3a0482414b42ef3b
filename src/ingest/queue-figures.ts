import type { Queue } from 'bullmq';
import type { RedisClient } from '../core/redis.js';
import { oldestWaiting1 } from '../core/scripts/oldest-waiting-1.js';
import { defineScripts } from '../core/scripts/redis-script.js';
import { readWorkerFigures, type WorkerFigures } from '../core/worker-figures.js';

/** The BullMQ states `inlet_queue_jobs` reports; `failed` is the dead-letter. */
export const QUEUE_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'completed',
  'failed',
] as const;

export type QueueState = (typeof QUEUE_STATES)[number];

/** What one scrape reads from Redis. */
export interface QueueFigures {
  /** Jobs per BullMQ state. */
  jobs: Record<QueueState, number>;
  /** Seconds since the job workers take next was added; 0 when nothing waits. */
  oldestWaitingSeconds: number;
  /** Figures every worker process keeps in Redis (src/core/worker-figures.ts). */
  workers: WorkerFigures;
}

/**
 * Reads the queue's figures for a scrape. All three reads go out in one write on the ingest's
 * fail-fast connection, so a scrape costs one round trip and fails at once while Redis is away.
 */
export class QueueFigureReader {
  private readonly queues: Queue[];

  /**
   * @param queue - the queue, or every shard's queue (INLET_SHARDS): their jobs are summed and
   *   the oldest waiting job is the oldest of all
   * @param prefix - where the worker figures are (src/core/shards.ts's `globalPrefix`)
   */
  constructor(
    queue: Queue | Queue[],
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    this.queues = Array.isArray(queue) ? queue : [queue];
    defineScripts(redis, oldestWaiting1);
  }

  /** Reads every figure; rejects when Redis cannot answer. */
  async read(now = Date.now()): Promise<QueueFigures> {
    const [counts, oldest, workers] = await Promise.all([
      Promise.all(this.queues.map((queue) => queue.getJobCounts(...QUEUE_STATES))),
      Promise.all(
        this.queues.map((queue) =>
          this.redis.inletOldestWaiting(queue.keys.wait ?? '', queue.toKey('')),
        ),
      ),
      readWorkerFigures(this.redis, this.prefix),
    ]);
    const jobs = {} as Record<QueueState, number>;
    for (const state of QUEUE_STATES) {
      jobs[state] = counts.reduce((sum, shard) => sum + (shard[state] ?? 0), 0);
    }
    const addedAt = Math.min(
      ...oldest.map((value) => Number(value)).filter((value) => value > 0),
      Number.POSITIVE_INFINITY,
    );
    const oldestWaitingSeconds = Number.isFinite(addedAt) ? Math.max(0, (now - addedAt) / 1000) : 0;
    return { jobs, oldestWaitingSeconds, workers };
  }
}
