import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.js';
import { type DeliveryJob, jobIdFor, keys } from '../core/job.js';
import { StoreBatch, type StoreRequest } from './store-batch.js';

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

/** Claim tokens: unique per process and claim, without a random draw per request. */
const PROCESS_TOKEN = randomBytes(9).toString('base64url');
let claims = 0;

/** A claim outlives any store that can still succeed (1 s deadline) with a wide margin. */
const CLAIM_TTL_MS = 10_000;
/** How long a request waits for another request storing the same delivery. */
const PENDING_WAIT_MS = 1_000;
const PENDING_POLL_MS = 15;

interface DeliveryScripts {
  claimDelivery(seenKey: string, jobKey: string, token: string, ttlMs: number): Promise<string>;
  releaseClaim(seenKey: string, token: string): Promise<number>;
}

/**
 * Stores accepted deliveries exactly once per `webhook-id`, and remembers each id for the
 * de-duplication window so that a repeat is recognised even after its job was removed.
 *
 * One delivery costs two round trips, each shared with the deliveries that arrive alongside it:
 * the claim (auto-pipelined), then one MULTI that adds the BullMQ job and marks the id stored
 * (store-batch.ts). A failure between them leaves only a short-lived claim, never a false
 * `duplicate`: the id is marked stored in the same transaction that stores the job.
 */
export class DeliveryEnqueuer {
  /** Stores in flight in this process, so that concurrent repeats wait here, not on Redis. */
  private readonly inFlight = new Map<string, Promise<EnqueueOutcome>>();
  private readonly scripts: DeliveryScripts;
  private readonly batch: StoreBatch;

  constructor(
    private readonly queue: Queue<DeliveryJob>,
    connections: {
      /** Runs the claim scripts; best without BullMQ's scripts on it (see server.ts). */
      claims: Redis;
      /** The queue's own connection, on which the store MULTI runs. */
      store: Redis;
    },
    private readonly config: Config,
    private readonly deadlineMs = 1_000,
  ) {
    const { claims, store } = connections;
    claims.defineCommand('claimDelivery', { numberOfKeys: 2, lua: CLAIM_DELIVERY });
    claims.defineCommand('releaseClaim', { numberOfKeys: 1, lua: RELEASE_CLAIM });
    this.scripts = claims as unknown as DeliveryScripts;
    this.batch = new StoreBatch(queue, store, config);
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
    const token = `p:${PROCESS_TOKEN}:${++claims}`;
    const started = Date.now();
    for (;;) {
      const claim = await this.scripts.claimDelivery(seenKey, jobKey, token, CLAIM_TTL_MS);
      if (claim === 'duplicate') return 'duplicate';
      if (claim === 'claimed') return this.store({ delivery, jobId, jobKey, seenKey }, token);
      // Another process is storing this id right now: wait for its answer, not past our deadline.
      if (Date.now() - started > PENDING_WAIT_MS) {
        throw new StoreUnavailableError('the same delivery is being stored by another request');
      }
      await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
    }
  }

  private async store(request: StoreRequest, token: string): Promise<EnqueueOutcome> {
    try {
      await this.batch.store(request);
      return 'accepted';
    } catch (error) {
      // Give the claim back so the sender's retry can store it; if Redis is gone, it expires.
      this.scripts.releaseClaim(request.seenKey, token).catch(() => undefined);
      throw new StoreUnavailableError(`could not store the delivery: ${(error as Error).message}`);
    }
  }
}

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
