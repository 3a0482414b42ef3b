import { type IRedisTransaction, Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.js';
import { DELIVERY_JOB_NAME, type DeliveryJob, deliveryJobOptions } from '../core/job.js';

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

interface MarkStoredCommand {
  markStored(seenKey: string, jobKey: string, windowSeconds: number): unknown;
}

/** One claimed delivery waiting for its write. */
export interface StoreRequest {
  delivery: DeliveryJob;
  jobId: string;
  jobKey: string;
  seenKey: string;
}

interface Pending extends StoreRequest {
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Writes the deliveries claimed in one turn of the event loop in a single MULTI: for each, BullMQ's
 * add and the `seen` mark. Under load this turns N round trips (and N ioredis transaction
 * objects, each of which copies every BullMQ script onto itself) into one; the bench measured
 * that copy as the ingest's largest single cost. Each delivery still succeeds or fails on its
 * own results, so one bad write never fails its neighbours.
 */
export class StoreBatch {
  private pending: Pending[] = [];

  constructor(
    private readonly queue: Queue<DeliveryJob>,
    redis: Redis,
    private readonly config: Config,
  ) {
    redis.defineCommand('markStored', { numberOfKeys: 2, lua: MARK_STORED });
  }

  /** Resolves once Redis confirmed the job and its mark; rejects with the reason otherwise. */
  store(request: StoreRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      // setImmediate runs after the poll phase: every request parsed in this turn joins the batch.
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ ...request, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const queued: Pending[] = [];
    let results: [Error | null, unknown][] | null;
    try {
      const client = await this.queue.backend.client;
      // BullMQ's transaction is ioredis' MULTI underneath; its type only lists what BullMQ uses.
      const multi = client.multi() as IRedisTransaction & MarkStoredCommand;
      for (const item of batch) {
        try {
          const options = deliveryJobOptions(this.config, item.jobId);
          const job = new Job(this.queue, DELIVERY_JOB_NAME, item.delivery, options, item.jobId);
          // The add's own promise settles with exec(); its errors are read from exec's results.
          job.addJob(multi).catch(() => undefined);
        } catch (error) {
          item.reject(error as Error); // refused by BullMQ before anything was queued
          continue;
        }
        multi.markStored(item.seenKey, item.jobKey, this.config.INLET_DEDUP_WINDOW_SECONDS);
        queued.push(item);
      }
      results = queued.length > 0 ? await multi.exec() : [];
    } catch (error) {
      for (const item of queued.length > 0 ? queued : batch) item.reject(error as Error);
      return;
    }
    queued.forEach((item, index) => {
      const added = results?.[2 * index];
      const marked = results?.[2 * index + 1];
      const error = added?.[0] ?? marked?.[0];
      if (!added || !marked) item.reject(new Error('transaction aborted'));
      else if (error) item.reject(error);
      else if (marked[1] !== 1) item.reject(new Error('the job was not stored'));
      else item.resolve();
    });
  }
}
