import { Job, type Queue } from 'bullmq';
import type { Config } from '../core/config.js';
import {
  DELIVERY_JOB_NAME,
  type DeliveryJob,
  deliveryJobOptions,
  jobIdFor,
  keys,
} from '../core/job.js';
import type { RedisClient } from '../core/redis.js';
import { defineScripts } from '../core/scripts/redis-script.js';
import { BULLMQ_ADD_KEYS, storeDelivery11 } from '../core/scripts/store-delivery-11.js';

/** What happened to a delivery offered to the queue. */
export type EnqueueOutcome = 'accepted' | 'duplicate';

/** Redis could not confirm the write in time; the sender must try again (503). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** Where one shard's deliveries go (src/ingest/sharded-enqueuer.ts); left out, `INLET_PREFIX`. */
export interface EnqueueOptions {
  /** Prefix of the de-duplication marks. @defaultValue `INLET_PREFIX` */
  seenPrefix?: string;
  /**
   * Called after Redis confirmed a store (or an earlier one) with the key the store was routed
   * by; rejects with {@link StoreUnavailableError} when the delivery may not be acknowledged yet
   * (`INLET_MIN_REPLICAS`).
   */
  confirm?: (routedBy: string) => Promise<void>;
}

/**
 * Stores accepted deliveries exactly once per `webhook-id`, and remembers each id for the
 * de-duplication window so that a repeat is recognised even after its job was removed.
 *
 * One delivery is one script call (storeDelivery-11, src/core/scripts/), on an auto-pipelined connection: the calls of
 * the requests parsed in one turn of the event loop share a single write and round trip. The
 * job's fields are encoded by BullMQ itself (see {@link bullmqAddArguments}), so workers, the
 * dashboard and `inlet replay` read exactly what `Queue.add` would have written.
 */
export class DeliveryEnqueuer {
  private readonly redis: RedisClient;
  /** The last call BullMQ made on {@link recorder}. */
  private recorded: { name: string; args: Array<string | Buffer> } | undefined;
  /** Handed to `Job.addJob` in place of a Redis client: it keeps the call instead of sending it. */
  private readonly recorder = {
    runCommand: (name: string, args: Array<string | Buffer>) => {
      this.recorded = { name, args };
      return Promise.resolve(1);
    },
  };

  /**
   * @param redis - a `fail-fast` connection (its command timeout is the store's deadline),
   *   best one without BullMQ's scripts defined on it: fewer scripts to check at each call.
   */
  constructor(
    private readonly queue: Queue<DeliveryJob>,
    redis: RedisClient,
    private readonly config: Config,
    private readonly options: EnqueueOptions = {},
  ) {
    // Throws one line at start when the installed BullMQ is not the one storeDelivery wraps.
    defineScripts(redis, storeDelivery11());
    this.redis = redis;
  }

  /**
   * Stores `delivery` unless its `webhook-id` was stored before. Resolves only once Redis
   * confirmed the write (`accepted`) or an earlier one (`duplicate`); rejects with
   * {@link StoreUnavailableError} when Redis cannot confirm either in time.
   */
  async enqueueDelivery(delivery: DeliveryJob, predictionJson?: string): Promise<EnqueueOutcome> {
    const jobId = jobIdFor(delivery.webhookId);
    const bullmqArgs =
      predictionJson === undefined
        ? this.bullmqAddArguments(delivery, jobId)
        : this.withRawPrediction(delivery, predictionJson, jobId);
    let result: number;
    try {
      result = await this.redis.storeDelivery(
        ...bullmqArgs.slice(0, BULLMQ_ADD_KEYS),
        keys.seen(this.options.seenPrefix ?? this.config.INLET_PREFIX, delivery.webhookId),
        this.queue.toKey(jobId),
        ...bullmqArgs.slice(BULLMQ_ADD_KEYS),
        this.config.INLET_DEDUP_WINDOW_SECONDS,
      );
    } catch (error) {
      throw new StoreUnavailableError(`could not store the delivery: ${(error as Error).message}`);
    }
    if (result === 1 || result === 0) await this.options.confirm?.(this.queue.toKey(jobId));
    if (result === 1) return 'accepted';
    if (result === 0) return 'duplicate';
    throw new StoreUnavailableError(`BullMQ refused the job (code ${result})`);
  }

  /**
   * {@link bullmqAddArguments} for a delivery whose prediction is `predictionJson`, the JSON text
   * it was parsed from (the request body): the job's data is written with that text in place of
   * BullMQ's `JSON.stringify` of the parsed object, which saves re-serialising the largest part
   * of every delivery. The text was parsed as one JSON object, so the data is valid JSON that
   * parses to the same delivery; whitespace and escapes are the sender's.
   */
  private withRawPrediction(
    delivery: DeliveryJob,
    predictionJson: string,
    jobId: string,
  ): Array<string | Buffer> {
    const { prediction: _, ...rest } = delivery;
    const args = this.bullmqAddArguments(rest as DeliveryJob, jobId);
    const head = args[BULLMQ_ADD_KEYS + 1] as string; // `{"webhookId":…,"query":{…}}`
    args[BULLMQ_ADD_KEYS + 1] = `${head.slice(0, -1)},"prediction":${predictionJson}}`;
    return args;
  }

  /**
   * The keys and arguments BullMQ's `addStandardJob` script would be called with for this job,
   * read by handing `Job.addJob` a client that records the call instead of sending it. BullMQ
   * builds them synchronously, before its first `await`.
   */
  private bullmqAddArguments(delivery: DeliveryJob, jobId: string): Array<string | Buffer> {
    this.recorded = undefined;
    const options = deliveryJobOptions(this.config, jobId);
    const job = new Job(this.queue, DELIVERY_JOB_NAME, delivery, options, jobId);
    job.addJob(this.recorder as never).catch(() => undefined);
    // Set by the recorder inside addJob, which TypeScript cannot see from here.
    const call = this.recorded as { name: string; args: Array<string | Buffer> } | undefined;
    if (!call?.name.startsWith('addStandardJob:')) {
      throw new Error(`BullMQ added the job with ${call?.name ?? 'no call'}, not addStandardJob`);
    }
    if (call.args.length !== BULLMQ_ADD_KEYS + 3) {
      throw new Error(`BullMQ's addStandardJob took ${call.args.length} arguments, not 12`);
    }
    return call.args;
  }
}
