import type { Queue } from 'bullmq';
import { bullmq } from '../core/commonjs-packages.js';
import { type DeliveryJob, jobIdFor, QUEUE_NAME, webhookIdOf } from '../core/job.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { recordWorkerEvent } from '../core/worker-figures.js';
import { ledgerKeys } from '../workers/prediction-ledger.js';

/**
 * Dead-lettered deliveries are the `failed` jobs of the `deliveries` queue, kept for
 * `INLET_DEAD_LETTER_RETENTION_SECONDS` (the workers' `removeOnFail`, src/core/job.ts). For each:
 * - the job's `failedReason` is the error (`<processor>: <message>`, or
 *   `N processors failed: a: …; b: …`), and `attemptsMade` the tries it had;
 * - the job's logs hold one line per failed run (`attempt 3: save-outputs failed: …`);
 * - the ledger's `<prefix>:delivery:<webhook-id>` hash holds `failed` (JSON list of processor
 *   names), `error` and `predictionId`.
 * A job that crashed its workers more than `INLET_MAX_STALLED_COUNT` times is failed by BullMQ
 * itself ("job stalled more than allowable limit") and has no failed processors.
 *
 * Re-driving a job moves it back to `wait`; the ledger then runs only the processors that have
 * not succeeded. A retry from the queue dashboard does the same, with the one try BullMQ gives a
 * retried job; {@link redriveDeadLetters} also resets the attempts, so it gets all of them.
 */
export interface DeadLetter {
  webhookId: string;
  predictionId: string;
  /** The job's failedReason. */
  error: string;
  /** Tries made before it was dead-lettered. */
  attempts: number;
  failedProcessors: string[];
}

export interface RedriveOptions {
  redis: Redis;
  /** The queue's prefix: one shard's (src/core/shards.ts), `INLET_PREFIX` with one shard. */
  prefix: string;
  /** Where the shard's ledger keys are. @defaultValue `prefix` */
  recordPrefix?: string;
  /** Where the worker figures are. @defaultValue `prefix` */
  figurePrefix?: string;
  /** Only this prediction's deliveries; all of them when left out. */
  predictionId?: string;
  /** List what would be re-driven, move nothing. */
  dryRun?: boolean;
  /** Called as deliveries are listed and moved: `done` of `total`. */
  onProgress?: (done: number, total: number) => void;
}

export interface RedriveResult {
  /** Dead-lettered deliveries that matched. */
  matched: number;
  /** Of those, moved back to the queue (0 for a dry run). */
  moved: number;
  deliveries: DeadLetter[];
}

/** Failed jobs read per round trip. */
const PAGE = 500;
/** Jobs re-driven at once. */
const PARALLEL = 16;

/**
 * Re-drives dead-lettered deliveries, all of them or one prediction's, for `inlet replay`.
 * A delivery that left the failed set meanwhile (retried from the dashboard, expired) is matched
 * but not counted as moved.
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveResult> {
  const queue = new bullmq.Queue<DeliveryJob>(QUEUE_NAME, {
    connection: options.redis,
    prefix: options.prefix,
  });
  try {
    const deliveries = await listDeadLetters(queue, options);
    const total = deliveries.length;
    let moved = 0;
    let done = 0;
    options.onProgress?.(0, total);
    if (!options.dryRun) {
      for (let i = 0; i < total; i += PARALLEL) {
        const batch = deliveries.slice(i, i + PARALLEL);
        const results = await Promise.all(batch.map((d) => redrive(queue, d.webhookId)));
        moved += results.filter(Boolean).length;
        done += batch.length;
        options.onProgress?.(done, total);
      }
      if (moved > 0) {
        const tx = options.redis.multi();
        recordWorkerEvent(tx, options.figurePrefix ?? options.prefix, 'redriven', moved);
        await tx.exec();
      }
    }
    return { matched: total, moved, deliveries };
  } finally {
    await queue.close().catch(() => undefined);
  }
}

/** Reads the failed set page by page, with what the ledger and the job say of each. */
async function listDeadLetters(queue: Queue<DeliveryJob>, options: RedriveOptions) {
  const { redis } = options;
  const prefix = options.recordPrefix ?? options.prefix;
  const failedKey = queue.toKey('failed');
  const found: DeadLetter[] = [];
  for (let start = 0; ; start += PAGE) {
    const ids = await redis.zrange(failedKey, start, start + PAGE - 1);
    if (ids.length === 0) break;
    const tx = redis.pipeline();
    for (const id of ids) {
      tx.hmget(queue.toKey(id), 'failedReason', 'atm');
      tx.hmget(ledgerKeys.delivery(prefix, webhookIdOf(id)), 'predictionId', 'failed');
    }
    const replies = (await tx.exec()) ?? [];
    const page = ids.map((id, i) => {
      const [reason, attempts] = (replies[2 * i]?.[1] ?? []) as (string | null)[];
      const [predictionId, failed] = (replies[2 * i + 1]?.[1] ?? []) as (string | null)[];
      return {
        webhookId: webhookIdOf(id),
        predictionId: predictionId ?? '',
        error: reason ?? '',
        attempts: Number(attempts ?? 0),
        failedProcessors: parseList(failed),
      };
    });
    await fillPredictionIds(redis, queue, page);
    const wanted = options.predictionId;
    found.push(...page.filter((d) => wanted === undefined || d.predictionId === wanted));
    if (ids.length < PAGE) break;
  }
  return found;
}

/**
 * The ledger's delivery hash names the prediction; for the few jobs without one (failed by the
 * stall check before they ever began, or whose hash expired) it is read from the job's data.
 */
async function fillPredictionIds(
  redis: Redis,
  queue: Queue<DeliveryJob>,
  page: DeadLetter[],
): Promise<void> {
  const missing = page.filter((d) => d.predictionId === '');
  if (missing.length === 0) return;
  const tx = redis.pipeline();
  for (const d of missing) tx.hget(queue.toKey(jobIdFor(d.webhookId)), 'data');
  const replies = (await tx.exec()) ?? [];
  missing.forEach((d, i) => {
    d.predictionId = predictionOf(replies[i]?.[1] as string | null) ?? '';
  });
}

async function redrive(queue: Queue<DeliveryJob>, webhookId: string): Promise<boolean> {
  try {
    const job = await bullmq.Job.fromId(queue, jobIdFor(webhookId));
    if (!job) return false;
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return true;
  } catch {
    return false; // No longer in the failed set: retried or removed meanwhile.
  }
}

function predictionOf(data: string | null | undefined): string | undefined {
  try {
    return (JSON.parse(data ?? '') as DeliveryJob).prediction.id;
  } catch {
    return undefined;
  }
}

function parseList(value: string | null | undefined): string[] {
  try {
    const list: unknown = JSON.parse(value ?? '[]');
    return Array.isArray(list) ? list.map(String) : [];
  } catch {
    return [];
  }
}
