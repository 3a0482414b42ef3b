import { QUEUE_NAME } from '../core/job.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { ledgerKeys } from '../workers/prediction-ledger.js';

/**
 * What the reconciler keeps in Redis, all under `INLET_PREFIX`:
 * - `<prefix>:reconcile:state` HASH: `highWater` (created_at, Unix ms, of the newest prediction
 *   of the last walk that reached its end) and, while a walk is unfinished, `resumeUrl` (the
 *   page to read next), `resumeTop` and `resumeStop` (where that walk started and must stop).
 * - `<prefix>:reconcile:open` ZSET: predictions to ask about by id (`GET /v1/predictions/{id}`),
 *   scored by when (Unix ms): seen unfinished, or finished so recently that their webhook may
 *   still come. Written only by the reconciler: the ingest and workers pay nothing for it.
 * - `<prefix>:reconcile:lease` STRING: the token of the reconciler allowed to run passes.
 *
 * What inlet "has recorded" is read from the workers' ledger: a prediction's hash
 * (`<prefix>:prediction:<id>`) has `status` once a worker began a terminal delivery of it.
 */
export const reconcileKeys = {
  state: (prefix: string) => `${prefix}:reconcile:state`,
  open: (prefix: string) => `${prefix}:reconcile:open`,
  lease: (prefix: string) => `${prefix}:reconcile:lease`,
};

/** Where the list walk stands. */
export interface WalkState {
  highWater: number;
  resume?: { url: string; top: number; stop: number };
}

export async function readWalkState(redis: Redis, prefix: string): Promise<WalkState> {
  const hash = await redis.hgetall(reconcileKeys.state(prefix));
  const state: WalkState = { highWater: Number(hash.highWater ?? 0) || 0 };
  if (hash.resumeUrl) {
    state.resume = {
      url: hash.resumeUrl,
      top: Number(hash.resumeTop) || 0,
      stop: Number(hash.resumeStop) || 0,
    };
  }
  return state;
}

export async function writeWalkState(redis: Redis, prefix: string, state: WalkState) {
  const key = reconcileKeys.state(prefix);
  const tx = redis.multi().del(key).hset(key, 'highWater', state.highWater);
  if (state.resume) {
    tx.hset(key, {
      resumeUrl: state.resume.url,
      resumeTop: state.resume.top,
      resumeStop: state.resume.stop,
    });
  }
  await tx.exec();
}

/**
 * The terminal status the workers' ledger recorded for each prediction (`undefined`: none), in
 * one round trip.
 */
export async function recordedStatuses(
  redis: Redis,
  prefix: string | ((predictionId: string) => string),
  ids: string[],
): Promise<Array<string | undefined>> {
  if (ids.length === 0) return [];
  const prefixOf = typeof prefix === 'string' ? () => prefix : prefix;
  // Issued together, so they share a write; on a cluster each goes to its slot's master (a
  // pipeline there must keep to one node).
  const results = await Promise.all(
    ids.map((id) => redis.hget(ledgerKeys.prediction(prefixOf(id), id), 'status')),
  );
  return results.map((value) => (typeof value === 'string' ? value : undefined));
}

/**
 * When the oldest delivery still waiting for a worker was stored (Unix ms), or `undefined` when
 * none waits. A prediction that completed after that may have its webhook in the queue, not yet
 * recorded by a worker: the reconciler leaves it for later rather than count a false loss.
 */
export async function oldestWaitingSince(
  redis: Redis,
  prefix: string | string[],
): Promise<number | undefined> {
  if (Array.isArray(prefix)) {
    // Every shard's queue (src/core/shards.ts): the oldest of their oldest.
    const each = await Promise.all(prefix.map((one) => oldestWaitingSince(redis, one)));
    const known = each.filter((at): at is number => at !== undefined);
    return known.length > 0 ? Math.min(...known) : undefined;
  }
  const base = `${prefix}:${QUEUE_NAME}`;
  // BullMQ pushes new jobs on the left of `wait` and workers take from the right.
  const jobId = await redis.lindex(`${base}:wait`, -1);
  if (!jobId) return undefined;
  const timestamp = await redis.hget(`${base}:${jobId}`, 'timestamp');
  return timestamp ? Number(timestamp) : undefined;
}
