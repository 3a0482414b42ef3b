import { randomBytes } from 'node:crypto';
import { type IRedisTransaction, Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.js';
import { DELIVERY_JOB_NAME, type DeliveryJob, deliveryJobOptions, keys } from '../core/job.js';

/** What happened to a delivery offered to the queue. */
export type EnqueueOutcome = 'accepted' | 'duplicate';

/** Redis could not confirm the write in time; the sender must try again (503). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * claimDelivery-2: decides, atomically, who stores a delivery.
 *   KEYS[1] `<prefix>:seen:<webhook-id>`   KEYS[2] the BullMQ job hash of that id
 *   ARGV[1] claim token `p:<random>`       ARGV[2] claim lifetime, ms
 * Returns `duplicate` (stored before), `pending` (another request is storing it now) or
 * `claimed` (the caller stores it; the claim expires by itself if the caller dies).
 */
const CLAIM_DELIVERY = `
local seen = redis.call('GET', KEYS[1])
if seen == 's' then return 'duplicate' end
if seen then return 'pending' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'`;

/**
 * releaseClaim-1: gives a claim back after a failed store, if it is still ours.
 *   KEYS[1] `<prefix>:seen:<webhook-id>`   ARGV[1] claim token
 */
const RELEASE_CLAIM = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * markStored-2: marks an id stored, only if its job really exists. Runs in the same MULTI after
 * BullMQ's add: Redis does not roll a transaction back, so a failed add must not leave a mark.
 *   KEYS[1] `<prefix>:seen:<webhook-id>`   KEYS[2] the BullMQ job hash of that id
 *   ARGV[1] de-duplication window, seconds
 */
const MARK_STORED = `
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], 's', 'EX', ARGV[1])
return 1`;

/** A claim outlives any store that can still succeed (1 s deadline) with a wide margin. */
const CLAIM_TTL_MS = 10_000;
/** How long a request waits for another request storing the same delivery. */
const PENDING_WAIT_MS = 1_000;
const PENDING_POLL_MS = 15;

interface MarkStoredCommand {
  markStored(seenKey: string, jobKey: string, windowSeconds: number): unknown;
}

interface DeliveryScripts {
  claimDelivery(seenKey: string, jobKey: string, token: string, ttlMs: number): Promise<string>;
  releaseClaim(seenKey: string, token: string): Promise<number>;
}

/**
 * Stores accepted deliveries exactly once per `webhook-id`, and remembers each id for the
 * de-duplication window so that a repeat is recognised even after its job was removed.
 *
 * One delivery costs two round trips: the claim, then one MULTI that adds the BullMQ job and marks
 * the id stored. A failure between them leaves only a short-lived claim, never a false
 * `duplicate`: the id is marked stored in the same transaction that stores the job.
 */
export class DeliveryEnqueuer {
  /** Stores in flight in this process, so that concurrent repeats wait here, not on Redis. */
  private readonly inFlight = new Map<string, Promise<EnqueueOutcome>>();
  private readonly scripts: DeliveryScripts;

  constructor(
    private readonly queue: Queue<DeliveryJob>,
    redis: Redis,
    private readonly config: Config,
    private readonly deadlineMs = 1_000,
  ) {
    redis.defineCommand('claimDelivery', { numberOfKeys: 2, lua: CLAIM_DELIVERY });
    redis.defineCommand('releaseClaim', { numberOfKeys: 1, lua: RELEASE_CLAIM });
    redis.defineCommand('markStored', { numberOfKeys: 2, lua: MARK_STORED });
    this.scripts = redis as unknown as DeliveryScripts;
  }

  /**
   * Stores `delivery` unless its `webhook-id` was stored before. Resolves only once Redis
   * confirmed the write (`accepted`) or an earlier one (`duplicate`); rejects with
   * {@link StoreUnavailableError} when Redis cannot confirm either within the deadline.
   */
  async enqueueDelivery(delivery: DeliveryJob): Promise<EnqueueOutcome> {
    const id = delivery.webhookId;
    const running = this.inFlight.get(id);
    if (running) {
      const outcome = await running.catch(() => undefined);
      // The first request stored it: this one is a repeat. If it failed, try on our own.
      if (outcome) return 'duplicate';
    }
    const attempt = withDeadline(this.claimAndStore(delivery), this.deadlineMs);
    this.inFlight.set(id, attempt);
    try {
      return await attempt;
    } finally {
      if (this.inFlight.get(id) === attempt) this.inFlight.delete(id);
    }
  }

  private async claimAndStore(delivery: DeliveryJob): Promise<EnqueueOutcome> {
    const seenKey = keys.seen(this.config.INLET_PREFIX, delivery.webhookId);
    const jobId = jobIdFor(delivery.webhookId);
    const jobKey = this.queue.toKey(jobId);
    const token = `p:${randomBytes(9).toString('base64url')}`;
    const started = Date.now();
    for (;;) {
      const claim = await this.scripts.claimDelivery(seenKey, jobKey, token, CLAIM_TTL_MS);
      if (claim === 'duplicate') return 'duplicate';
      if (claim === 'claimed') return this.store(delivery, { jobId, jobKey, seenKey, token });
      // Another process is storing this id right now: wait for its answer, not past our deadline.
      if (Date.now() - started > PENDING_WAIT_MS) {
        throw new StoreUnavailableError('the same delivery is being stored by another request');
      }
      await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
    }
  }

  private async store(
    delivery: DeliveryJob,
    ids: { jobId: string; jobKey: string; seenKey: string; token: string },
  ): Promise<EnqueueOutcome> {
    const { jobId, jobKey, seenKey, token } = ids;
    try {
      const client = await this.queue.backend.client;
      // BullMQ's transaction is ioredis' MULTI underneath; its type only lists what BullMQ uses.
      const multi = client.multi() as IRedisTransaction & MarkStoredCommand;
      const job = new Job(
        this.queue,
        DELIVERY_JOB_NAME,
        delivery,
        deliveryJobOptions(this.config, jobId),
        jobId,
      );
      // The add's own promise settles with exec(); its errors are read from exec's results.
      job.addJob(multi).catch(() => undefined);
      multi.markStored(seenKey, jobKey, this.config.INLET_DEDUP_WINDOW_SECONDS);
      const results = await multi.exec();
      const failed = results?.find(([error]) => error !== null);
      if (!results || failed) throw failed?.[0] ?? new Error('transaction aborted');
      if (results[1]?.[1] !== 1) throw new Error('the job was not stored');
      return 'accepted';
    } catch (error) {
      // Give the claim back so the sender's retry can store it; if Redis is gone, it expires.
      this.scripts.releaseClaim(seenKey, token).catch(() => undefined);
      throw new StoreUnavailableError(`could not store the delivery: ${(error as Error).message}`);
    }
  }
}

/**
 * The BullMQ job id of a delivery: its `webhook-id`. BullMQ refuses custom ids that are whole
 * numbers, so those (and only those) get a `#`, which the ingest never lets into an id.
 */
export function jobIdFor(webhookId: string): string {
  return /^[0-9]+$/.test(webhookId) ? `#${webhookId}` : webhookId;
}

/** Ids the ingest accepts: what Standard Webhooks senders use (`msg_…`), bounded in length. */
export const WEBHOOK_ID_PATTERN = /^[A-Za-z0-9_.~+=/-]{1,200}$/;

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUnavailableError(`Redis did not confirm within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
