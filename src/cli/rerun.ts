import type { Queue } from 'bullmq';
import { bullmq } from '../core/commonjs-packages.js';
import type { Config } from '../core/config.js';
import { ConfigError } from '../core/config.js';
import {
  DELIVERY_JOB_NAME,
  type DeliveryJob,
  deliveryJobOptions,
  jobIdFor,
  QUEUE_NAME,
} from '../core/job.js';
import { isTerminal, type Prediction } from '../core/prediction.js';
import type { RedisClient as Redis } from '../core/redis.js';
import { layoutOf, queuePrefix, recordPrefix, recordPrefixOf, shardOf } from '../core/shards.js';
import { ledgerKeys } from '../workers/prediction-ledger.js';
import { readPrediction } from './prediction-deliveries.js';

/**
 * `inlet replay --rerun`: runs chosen processors again for a prediction whose terminal delivery
 * already succeeded (after a fix, or to backfill a new processor). The ledger's once-per-prediction
 * rule is lifted deliberately, for those processors only:
 * 1. their `done:<processor>` marks in `<prefix>:prediction:<id>` are deleted, in one MULTI with
 *    an increment of that hash's `reruns` counter;
 * 2. a new delivery of the stored terminal prediction is queued with the webhook id
 *    `inlet-rerun-<prediction>-<n>` (n the counter), so a second rerun is a new delivery too.
 * The worker then runs every processor that wants the status and has no `done` mark: the chosen
 * ones, and any other that never succeeded for this prediction (they were due anyway).
 */
export interface RerunOptions {
  redis: Redis;
  config: Config;
  predictionId: string;
  processors: string[];
  /** The prediction to deliver, when Redis no longer has a delivery of it (`--data`). */
  given?: Prediction;
  dryRun: boolean;
}

export interface RerunPlan {
  prediction: Prediction;
  /** Where the prediction came from: a stored delivery's webhook id, or `--data`. */
  from: string;
  /** Chosen processors that had succeeded (their mark is cleared); the others run for the first time. */
  cleared: string[];
  firstTime: string[];
  /** The new delivery's webhook id (for a dry run, the one it would get). */
  webhookId: string;
}

export async function rerunProcessors(options: RerunOptions): Promise<RerunPlan> {
  const { redis, config, predictionId } = options;
  // The prediction's shard: its queue, and where its ledger is (src/core/shards.ts).
  const layout = layoutOf(config);
  const shard = shardOf(predictionId, layout.shards);
  const prefix = recordPrefix(layout, shard);
  const queue = new bullmq.Queue<DeliveryJob>(QUEUE_NAME, {
    connection: redis,
    prefix: queuePrefix(layout, shard),
  });
  try {
    const { prediction, from } = await terminalPrediction(options, queue);
    const key = ledgerKeys.prediction(prefix, predictionId);
    const marks = await redis.hmget(key, ...options.processors.map((p) => `done:${p}`));
    const cleared = options.processors.filter((_, i) => marks[i] !== null);
    const firstTime = options.processors.filter((_, i) => marks[i] === null);
    const next = Number((await redis.hget(key, 'reruns')) ?? 0) + 1;
    let webhookId = rerunId(predictionId, next);
    if (!options.dryRun) {
      const tx = redis.multi();
      if (cleared.length > 0) tx.hdel(key, ...cleared.map((p) => `done:${p}`));
      tx.hincrby(key, 'reruns', 1);
      const replies = (await tx.exec()) ?? [];
      webhookId = rerunId(predictionId, Number(replies.at(-1)?.[1] ?? next));
      const delivery: DeliveryJob = {
        webhookId,
        timestamp: Math.floor(Date.now() / 1000),
        receivedAt: Date.now(),
        query: {},
        prediction,
      };
      await queue.add(DELIVERY_JOB_NAME, delivery, deliveryJobOptions(config, jobIdFor(webhookId)));
    }
    return { prediction, from, cleared, firstTime, webhookId };
  } finally {
    await queue.close().catch(() => undefined);
  }
}

function rerunId(predictionId: string, n: number): string {
  return `inlet-rerun-${predictionId}-${n}`;
}

/** The newest stored terminal delivery of the prediction, or the one given with `--data`. */
async function terminalPrediction(
  options: RerunOptions,
  queue: Queue<DeliveryJob>,
): Promise<{ prediction: Prediction; from: string }> {
  if (options.given) {
    if (options.given.id !== options.predictionId) {
      throw new ConfigError(
        `--data holds prediction ${options.given.id}, not ${options.predictionId}`,
      );
    }
    if (!isTerminal(options.given.status)) {
      throw new ConfigError(
        `--data: prediction is ${options.given.status}; --rerun needs a terminal one`,
      );
    }
    return { prediction: options.given, from: '--data' };
  }
  const record = await readPrediction(
    options.redis,
    queue,
    recordPrefixOf(layoutOf(options.config), options.predictionId),
    options.predictionId,
  );
  const stored = record.deliveries.filter((d) => isTerminal(d.job.data.prediction.status)).at(-1);
  if (!stored) {
    throw new ConfigError(
      `no stored terminal delivery of prediction ${options.predictionId} (completed ones are kept an hour): pass it with --data FILE (e.g. from GET /v1/predictions/${options.predictionId})`,
    );
  }
  return { prediction: stored.job.data.prediction, from: stored.webhookId };
}
