import type { JobsOptions, WorkerOptions } from 'bullmq';
import type { Config } from './config.js';
import type { Prediction } from './prediction.js';
import type { RedisClient } from './redis.js';

/**
 * The job contract between the ingest and the workers: what one accepted delivery carries.
 * It never holds a signature, a secret or an `authorization` header.
 */
export interface DeliveryJob {
  /** The `webhook-id` header: unique per message, the same on Replicate's retries of it. */
  webhookId: string;
  /** The signed `webhook-timestamp`, Unix seconds (0 when verification is skipped and none came). */
  timestamp: number;
  /** When the ingest received the delivery, Unix milliseconds. */
  receivedAt: number;
  /** The webhook URL's query parameters, e.g. `?customId=123`; repeated names become arrays. */
  query: Record<string, string | string[]>;
  /** The prediction object, as Replicate sent it. */
  prediction: Prediction;
  /**
   * Where the delivery came from: absent (or `webhook`) for one Replicate posted, `reconcile`
   * for one `inlet reconcile` fetched from the API because no webhook of it was recorded.
   */
  source?: 'webhook' | 'reconcile';
}

/** The BullMQ queue every delivery goes through. */
export const QUEUE_NAME = 'deliveries';

/** The BullMQ job name of a delivery: what it is, for the dashboard. */
export const DELIVERY_JOB_NAME = 'replicate.prediction';

/**
 * The BullMQ options every delivery is added with. The job id is the `webhook-id`, so BullMQ
 * itself also refuses a second job for a message while the first one exists.
 * Retries use the workers' `inlet` backoff strategy (exponential with jitter). How long a
 * finished job is kept is the workers' setting ({@link deliveryRetention}), not the job's.
 */
export function deliveryJobOptions(config: Config, webhookId: string): JobsOptions {
  return {
    jobId: webhookId,
    attempts: config.INLET_ATTEMPTS,
    backoff: { type: 'inlet', delay: config.INLET_BACKOFF_MS },
  };
}

/**
 * How long the workers keep a finished delivery's job: a completed one an hour (at most the
 * last 10,000), for the dashboard; a failed (dead-lettered) one
 * `INLET_DEAD_LETTER_RETENTION_SECONDS`. BullMQ Worker options, which apply to every job that
 * names no retention of its own (one stored by inlet 0.1 names it, and keeps it).
 *
 * Not job options: BullMQ stores a job's options as JSON, encoded in Lua at each add, and these
 * two were 19,500 of the about 297,000 instructions Redis spent per stored delivery (6.6 %,
 * counted with callgrind), for a value that is the same for every job.
 */
export function deliveryRetention(
  config: Pick<Config, 'INLET_DEAD_LETTER_RETENTION_SECONDS'>,
): Pick<WorkerOptions, 'removeOnComplete' | 'removeOnFail'> {
  return {
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: config.INLET_DEAD_LETTER_RETENTION_SECONDS },
  };
}

/** Redis keys inlet owns beside BullMQ's, all under `INLET_PREFIX`. */
export const keys = {
  /**
   * `<prefix>:seen:<webhook-id>`: `s` for the de-duplication window once the delivery's job is
   * stored, set by the same script that stores it. See src/ingest/enqueue-delivery.ts.
   */
  seen: (prefix: string, webhookId: string) => `${prefix}:seen:${webhookId}`,
};

/**
 * Fields the ingest adds to a delivery's job hash beside BullMQ's own (storeDelivery-11), which
 * BullMQ never reads: the prediction's id and status, so that a script or a log line finds them
 * without decoding the job's data.
 */
export const JOB_FIELDS = { prediction: 'inlet:prediction', status: 'inlet:status' } as const;

/**
 * The prediction a delivery's job is for, from its hash at `jobKey`: the field the ingest wrote,
 * else the job's data (a job added by `Queue.add`, as `inlet rerun` does); undefined when the
 * job is gone or names none.
 */
export async function predictionOfJob(
  redis: RedisClient,
  jobKey: string,
): Promise<string | undefined> {
  const [named, data] = await redis.hmget(jobKey, JOB_FIELDS.prediction, 'data');
  if (named) return named;
  try {
    const id = (JSON.parse(data ?? '') as Partial<DeliveryJob>).prediction?.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Ids the ingest accepts: what Standard Webhooks senders use (`msg_…`), bounded in length. */
export const WEBHOOK_ID_PATTERN = /^[A-Za-z0-9_.~+=/-]{1,200}$/;

/**
 * The BullMQ job id of a delivery: its `webhook-id`. BullMQ refuses a custom id that reads back
 * unchanged through `parseInt` (`12`, `-50`, but not `012` or `+5`), so those (and only those)
 * get a `#`, which the ingest never lets into an id. The test is BullMQ's own.
 */
export function jobIdFor(webhookId: string): string {
  return String(Number.parseInt(webhookId, 10)) === webhookId ? `#${webhookId}` : webhookId;
}

/** The `webhook-id` a job id stands for: the inverse of {@link jobIdFor}. */
export function webhookIdOf(jobId: string): string {
  return jobId.startsWith('#') ? jobId.slice(1) : jobId;
}
