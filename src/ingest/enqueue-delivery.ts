import { createRequire } from 'node:module';
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.js';
import {
  DELIVERY_JOB_NAME,
  type DeliveryJob,
  deliveryJobOptions,
  jobIdFor,
  keys,
} from '../core/job.js';

/** What happened to a delivery offered to the queue. */
export type EnqueueOutcome = 'accepted' | 'duplicate';

/** Redis could not confirm the write in time; the sender must try again (503). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** BullMQ's own Lua for adding a job, as its Redis backend sends it (keys: 9, then 3 ARGV). */
interface BullmqScript {
  name: string;
  content: string;
  keys: number;
}
// BullMQ does not export its scripts from the package main; the CommonJS build is the one
// Node loads for `bullmq`, so this is the very script `Queue.add` runs, of the same version.
const { addStandardJob } = createRequire(import.meta.url)(
  'bullmq/dist/cjs/scripts/addStandardJob-9.js',
) as { addStandardJob: BullmqScript };

/**
 * storeDelivery-11: stores a delivery once per `webhook-id`, atomically, in one round trip.
 *   KEYS[1..9]  BullMQ's addStandardJob keys (wait, paused, meta, id, completed, delayed,
 *               active, events, marker)
 *   KEYS[10]    `<prefix>:seen:<webhook-id>`, set to `s` for the de-duplication window
 *   KEYS[11]    the BullMQ job hash of that id
 *   ARGV[1..3]  BullMQ's addStandardJob arguments (packed args, job data, packed options)
 *   ARGV[4]     the de-duplication window, seconds
 * Returns 1 (stored now), 0 (stored before: a duplicate) or BullMQ's negative error code.
 *
 * BullMQ's script is wrapped, unchanged, as a local function: the check, the add and the mark are
 * one script, so Redis runs them with nothing in between. Two requests with the same id, in one
 * process or in two, cannot both store it, and the second is told `duplicate` only once the first
 * has stored it. The mark is written last: an add that fails leaves no mark, so the sender's
 * retry is never a false `duplicate`.
 */
const STORE_DELIVERY = `
local function bullmqAdd(KEYS, ARGV)
${addStandardJob.content}
end
if redis.call('GET', KEYS[10]) == 's' or redis.call('EXISTS', KEYS[11]) == 1 then return 0 end
local added = bullmqAdd(
  {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]},
  {ARGV[1], ARGV[2], ARGV[3]})
if type(added) == 'number' and added < 0 then return added end
redis.call('SET', KEYS[10], 's', 'EX', ARGV[4])
return 1`;

interface StoreDeliveryCommand {
  storeDelivery(...keysAndArgs: Array<string | Buffer | number>): Promise<number>;
}

/**
 * Stores accepted deliveries exactly once per `webhook-id`, and remembers each id for the
 * de-duplication window so that a repeat is recognised even after its job was removed.
 *
 * One delivery is one script call (storeDelivery), on an auto-pipelined connection: the calls of
 * the requests parsed in one turn of the event loop share a single write and round trip. The
 * job's fields are encoded by BullMQ itself (see {@link bullmqAddArguments}), so workers, the
 * dashboard and `inlet replay` read exactly what `Queue.add` would have written.
 */
export class DeliveryEnqueuer {
  private readonly redis: Redis & StoreDeliveryCommand;
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
    redis: Redis,
    private readonly config: Config,
  ) {
    redis.defineCommand('storeDelivery', {
      numberOfKeys: addStandardJob.keys + 2,
      lua: STORE_DELIVERY,
    });
    this.redis = redis as Redis & StoreDeliveryCommand;
  }

  /**
   * Stores `delivery` unless its `webhook-id` was stored before. Resolves only once Redis
   * confirmed the write (`accepted`) or an earlier one (`duplicate`); rejects with
   * {@link StoreUnavailableError} when Redis cannot confirm either in time.
   */
  async enqueueDelivery(delivery: DeliveryJob): Promise<EnqueueOutcome> {
    const jobId = jobIdFor(delivery.webhookId);
    const bullmqArgs = this.bullmqAddArguments(delivery, jobId);
    let result: number;
    try {
      result = await this.redis.storeDelivery(
        ...bullmqArgs.slice(0, addStandardJob.keys),
        keys.seen(this.config.INLET_PREFIX, delivery.webhookId),
        this.queue.toKey(jobId),
        ...bullmqArgs.slice(addStandardJob.keys),
        this.config.INLET_DEDUP_WINDOW_SECONDS,
      );
    } catch (error) {
      throw new StoreUnavailableError(`could not store the delivery: ${(error as Error).message}`);
    }
    if (result === 1) return 'accepted';
    if (result === 0) return 'duplicate';
    throw new StoreUnavailableError(`BullMQ refused the job (code ${result})`);
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
    if (!call?.name.startsWith(`${addStandardJob.name}:`)) {
      throw new Error(`BullMQ added the job with ${call?.name ?? 'no call'}, not addStandardJob`);
    }
    if (call.args.length !== addStandardJob.keys + 3) {
      throw new Error(`BullMQ's addStandardJob took ${call.args.length} arguments, not 12`);
    }
    return call.args;
  }
}
