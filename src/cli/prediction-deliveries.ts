import type { Job, JobType, Queue } from 'bullmq';
import { type DeliveryJob, jobIdFor, predictionOfJob, webhookIdOf } from '../core/job.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { ledgerKeys } from '../workers/prediction-ledger.js';

/**
 * What Redis still holds about one prediction: its deliveries (jobs, in any state), the ledger's
 * record of it, and each delivery's own ledger entry. Completed jobs are kept an hour, dead
 * letters for `INLET_DEAD_LETTER_RETENTION_SECONDS`, the ledger longer.
 */
export interface PredictionRecord {
  predictionId: string;
  /** The ledger's `<prefix>:prediction:<id>` hash: `status`, `done:<processor>`, `skipped`. */
  ledger: Record<string, string>;
  /** Set while a worker runs the prediction's processors: its lock token and milliseconds left. */
  lock?: { holder: string; ttlMs: number };
  deliveries: DeliveryRecord[];
}

export interface DeliveryRecord {
  webhookId: string;
  state: string;
  job: Job<DeliveryJob>;
  /**
   * The ledger's `<prefix>:delivery:<webhook-id>` hash: the progress of an unfinished delivery
   * that waited, was skipped, failed, or had a processor succeed with more to run; else empty.
   */
  ledger: Record<string, string>;
}

const STATES: JobType[] = ['active', 'wait', 'prioritized', 'delayed', 'failed', 'completed'];
const PAGE = 500;

/** The prediction a webhook id's job belongs to, when Redis still has the job. */
export function predictionOfWebhook(
  redis: Redis,
  queue: Queue<DeliveryJob>,
  webhookId: string,
): Promise<string | undefined> {
  return predictionOfJob(redis, queue.toKey(jobIdFor(webhookId)));
}

/** Everything Redis holds about `predictionId`; the jobs are found by reading each state's list. */
export async function readPrediction(
  redis: Redis,
  queue: Queue<DeliveryJob>,
  prefix: string,
  predictionId: string,
): Promise<PredictionRecord> {
  const deliveries: DeliveryRecord[] = [];
  for (const state of STATES) {
    for (let start = 0; ; start += PAGE) {
      const jobs = await queue.getJobs([state], start, start + PAGE - 1, true);
      for (const job of jobs) {
        if (job?.data?.prediction?.id !== predictionId || !job.id) continue;
        const webhookId = webhookIdOf(job.id);
        const ledger = await redis.hgetall(ledgerKeys.delivery(prefix, webhookId));
        deliveries.push({ webhookId, state, job, ledger });
      }
      if (jobs.length < PAGE) break;
    }
  }
  deliveries.sort((a, b) => a.job.timestamp - b.job.timestamp);
  const ledger = await redis.hgetall(ledgerKeys.prediction(prefix, predictionId));
  const lockKey = ledgerKeys.lock(prefix, predictionId);
  const [holder, ttlMs] = await Promise.all([redis.get(lockKey), redis.pttl(lockKey)]);
  return {
    predictionId,
    ledger,
    ...(holder ? { lock: { holder, ttlMs } } : {}),
    deliveries,
  };
}
