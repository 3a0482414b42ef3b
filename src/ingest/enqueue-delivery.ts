import type { Queue } from 'bullmq';
import { Packr, unpack } from 'msgpackr';
import { bullmq } from '../core/commonjs-packages.js';
import type { Config } from '../core/config.js';
import {
  DELIVERY_JOB_NAME,
  type DeliveryJob,
  deliveryJobOptions,
  jobIdFor,
  keys,
} from '../core/job.js';
import { corkUntilImmediate, type RedisClient } from '../core/redis.js';
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
 * One delivery is one script call (storeDelivery-11, src/core/scripts/); the calls of the
 * requests parsed in one turn of the event loop share a single write per Redis node
 * ({@link corkUntilImmediate}). The job's fields are encoded from a template BullMQ
 * itself encoded (see {@link addArgumentsEncoder}), so workers, the dashboard and `inlet replay`
 * read exactly what `Queue.add` would have written.
 */
export class DeliveryEnqueuer {
  private readonly redis: RedisClient;
  private readonly encode: AddArgumentsEncoder;
  /** How jobs are encoded: `template` unless its check at start failed (see addArgumentsEncoder). */
  readonly encoding: 'template' | 'bullmq';

  /**
   * @param redis - a `fail-fast` connection (its command timeout backs up the deadline the
   *   ingest's route keeps for each store), best one without BullMQ's scripts defined on it:
   *   fewer scripts to check at each call.
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
    [this.encode, this.encoding] = addArgumentsEncoder(queue, config);
  }

  /**
   * Stores `delivery` unless its `webhook-id` was stored before. Resolves only once Redis
   * confirmed the write (`accepted`) or an earlier one (`duplicate`); rejects with
   * {@link StoreUnavailableError} when Redis cannot confirm either in time.
   */
  async enqueueDelivery(delivery: DeliveryJob, predictionJson?: string): Promise<EnqueueOutcome> {
    const jobId = jobIdFor(delivery.webhookId);
    const bullmqArgs = this.encode(delivery, predictionJson, jobId);
    let result: number;
    try {
      corkUntilImmediate(this.redis);
      result = await this.redis.storeDelivery(
        ...bullmqArgs.slice(0, BULLMQ_ADD_KEYS),
        keys.seen(this.options.seenPrefix ?? this.config.INLET_PREFIX, delivery.webhookId),
        this.queue.toKey(jobId),
        ...bullmqArgs.slice(BULLMQ_ADD_KEYS),
        this.config.INLET_DEDUP_WINDOW_SECONDS,
        delivery.prediction.id,
        delivery.prediction.status,
      );
    } catch (error) {
      throw new StoreUnavailableError(`could not store the delivery: ${(error as Error).message}`);
    }
    if (result === 1 || result === 0) await this.options.confirm?.(this.queue.toKey(jobId));
    if (result === 1) return 'accepted';
    if (result === 0) return 'duplicate';
    throw new StoreUnavailableError(`BullMQ refused the job (code ${result})`);
  }
}

/**
 * The keys and arguments of BullMQ's addStandardJob script for one delivery, the job stored with
 * `predictionJson` (the request body it was parsed from) as its prediction when given: the data
 * is BullMQ's `JSON.stringify` of the job with that text in place of the prediction's, which
 * saves re-serialising the largest part of every delivery. The text parsed as one JSON object, so
 * the data is valid JSON that parses to the same delivery; whitespace and escapes are the sender's.
 */
type AddArgumentsEncoder = (
  delivery: DeliveryJob,
  predictionJson: string | undefined,
  jobId: string,
) => Array<string | Buffer>;

/** BullMQ's packer settings (bullmq 6.7.0, classes/redis-queue-backend.js). */
const packer = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

/** Where the job id and the timestamp sit in addStandardJob's packed arguments. */
const ARG_JOB_ID = 1;
const ARG_TIMESTAMP = 3;

/**
 * Encodes a delivery's addStandardJob arguments the way `Queue.add` would. BullMQ itself encodes a
 * template job when the ingest starts; each delivery then changes only what differs between
 * deliveries (the job id, the time and the data) and packs the two MessagePack arguments with
 * BullMQ's own packer settings. Building a `Job` and running its `addJob` per delivery cost 12–20
 * µs of the ingest's ~250 a request; this costs about 4.
 *
 * At start the template is checked: the ids and times of three probe jobs, encoded both ways,
 * must give the same bytes. If they ever differ (another msgpackr), every delivery is encoded by
 * BullMQ instead, as before: slower, never different.
 */
function addArgumentsEncoder(
  queue: Queue<DeliveryJob>,
  config: Config,
): [AddArgumentsEncoder, 'template' | 'bullmq'] {
  const byBullmq = bullmqEncoder(queue, config);
  const template = byBullmq(probe('template', 0), undefined, 'template');
  const args = unpack(template[BULLMQ_ADD_KEYS] as Buffer) as unknown[];
  const opts = unpack(template[BULLMQ_ADD_KEYS + 2] as Buffer) as Record<string, unknown>;
  const fast: AddArgumentsEncoder = (delivery, predictionJson, jobId) => {
    const packedArgs = [...args];
    packedArgs[ARG_JOB_ID] = jobId;
    packedArgs[ARG_TIMESTAMP] = Date.now();
    return [
      ...template.slice(0, BULLMQ_ADD_KEYS),
      packer.pack(packedArgs),
      jobData(delivery, predictionJson),
      packer.pack({ ...opts, jobId }),
    ];
  };
  const agrees = ['msg_2VNpPZqbO7C4', '#12', 'x'.repeat(200)].every((jobId) => {
    const delivery = probe(jobId, 1_700_000_000_123);
    const theirs = byBullmq(delivery, undefined, jobId);
    const ours = fast(delivery, undefined, jobId);
    // BullMQ read the clock itself: compare with its time.
    const time = (unpack(theirs[BULLMQ_ADD_KEYS] as Buffer) as unknown[])[ARG_TIMESTAMP];
    const ourArgs = unpack(ours[BULLMQ_ADD_KEYS] as Buffer) as unknown[];
    ourArgs[ARG_TIMESTAMP] = time;
    ours[BULLMQ_ADD_KEYS] = packer.pack(ourArgs);
    return ours.every((arg, at) => Buffer.from(arg).equals(Buffer.from(theirs[at] ?? '')));
  });
  return agrees ? [fast, 'template'] : [byBullmq, 'bullmq'];
}

function probe(webhookId: string, receivedAt: number): DeliveryJob {
  return {
    webhookId,
    timestamp: 1_700_000_000,
    receivedAt,
    query: { tag: ['a', 'b'] },
    prediction: { id: 'probe', status: 'succeeded' } as DeliveryJob['prediction'],
  };
}

/** The job's data as BullMQ writes it: `JSON.stringify`, with the prediction's own text. */
function jobData(delivery: DeliveryJob, predictionJson: string | undefined): string {
  if (predictionJson === undefined) return JSON.stringify(delivery);
  const { prediction: _, ...rest } = delivery;
  return withPrediction(JSON.stringify(rest), predictionJson);
}

/** `{"webhookId":…,"query":{…}}` (the job's JSON without its prediction) with the prediction. */
function withPrediction(head: string, predictionJson: string): string {
  return `${head.slice(0, -1)},"prediction":${predictionJson}}`;
}

/**
 * The arguments as BullMQ builds them, read by handing `Job.addJob` a client that records the
 * call instead of sending it. BullMQ builds them synchronously, before its first `await`.
 */
function bullmqEncoder(queue: Queue<DeliveryJob>, config: Config): AddArgumentsEncoder {
  let recorded: { name: string; args: Array<string | Buffer> } | undefined;
  const recorder = {
    runCommand: (name: string, args: Array<string | Buffer>) => {
      recorded = { name, args };
      return Promise.resolve(1);
    },
  };
  return (delivery, predictionJson, jobId) => {
    recorded = undefined;
    const { prediction: _, ...rest } = delivery;
    const data = predictionJson === undefined ? delivery : (rest as DeliveryJob);
    const job = new bullmq.Job(
      queue,
      DELIVERY_JOB_NAME,
      data,
      deliveryJobOptions(config, jobId),
      jobId,
    );
    job.addJob(recorder as never).catch(() => undefined);
    // Set by the recorder inside addJob, which TypeScript cannot see from here.
    const call = recorded as { name: string; args: Array<string | Buffer> } | undefined;
    if (!call?.name.startsWith('addStandardJob:')) {
      throw new Error(`BullMQ added the job with ${call?.name ?? 'no call'}, not addStandardJob`);
    }
    if (call.args.length !== BULLMQ_ADD_KEYS + 3) {
      throw new Error(`BullMQ's addStandardJob took ${call.args.length} arguments, not 12`);
    }
    if (predictionJson !== undefined) {
      const head = call.args[BULLMQ_ADD_KEYS + 1] as string;
      call.args[BULLMQ_ADD_KEYS + 1] = withPrediction(head, predictionJson);
    }
    return call.args;
  };
}
