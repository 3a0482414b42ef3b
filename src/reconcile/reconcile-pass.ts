import { type DeliveryJob, keys } from '../core/job.js';
import { isTerminal, type Prediction } from '../core/prediction.js';
import type { RedisClient as Redis } from '../core/redis.js';
import {
  oldestWaitingSince,
  readWalkState,
  reconcileKeys,
  recordedStatuses,
  type WalkState,
  writeWalkState,
} from './reconcile-state.js';
import {
  BudgetExhaustedError,
  type PredictionPage,
  ReplicateApiError,
  type ReplicateClient,
} from './replicate-client.js';

/** Stores a delivery the way the ingest does (a `DeliveryEnqueuer`). */
export interface DeliveryStore {
  enqueueDelivery(delivery: DeliveryJob): Promise<'accepted' | 'duplicate'>;
}

export interface PassOptions {
  redis: Redis;
  /** Where the reconciler's own keys are: `INLET_PREFIX`, or `globalPrefix` with shards. */
  prefix: string;
  /**
   * With shards (src/core/shards.ts): every shard's queue prefix, and where a prediction's
   * ledger and de-duplication marks are. @defaultValue both `prefix`
   */
  shards?: { queuePrefixes: string[]; recordPrefixOf: (predictionId: string) => string };
  api: ReplicateClient;
  /** Left out for a dry run. */
  store?: DeliveryStore;
  windowMs: number;
  graceMs: number;
  /** Lists what would be delivered; writes nothing to Redis. */
  dryRun?: boolean;
  now?: () => number;
}

/** One prediction the pass found finished but not recorded. */
export interface Reconciled {
  predictionId: string;
  status: string;
  webhookId: string;
  completedAt: string | null | undefined;
  /** `accepted`: stored now; `duplicate`: stored by an earlier pass; `dry-run`: not stored. */
  outcome: 'accepted' | 'duplicate' | 'dry-run';
}

/** What a pass did. */
export interface PassReport {
  pages: number;
  gets: number;
  requests: number;
  /** Predictions looked at (listed or fetched). */
  seen: number;
  /** Finished, and recorded by the workers: nothing to do. */
  recorded: number;
  /** Unfinished, or finished too recently: asked about again later. */
  deferred: number;
  reconciled: Reconciled[];
  /** Why the walk stopped: its end, or what cut it short (it resumes there next pass). */
  stoppedBy: 'window' | 'high-water' | 'end' | 'budget' | 'api-error';
  error?: string;
  seconds: number;
}

/** The `webhook-id` of a reconciled delivery: the same for a prediction's state in every pass. */
export function reconcileWebhookId(predictionId: string, status: string): string {
  return `reconcile_${predictionId}_${status}`;
}

/** A walk re-reads this much before the last walk's newest prediction, for clock skew. */
const OVERLAP_MS = 60_000;
/** Replicate retries a terminal webhook for about this long after completion. */
const REPLICATE_RETRY_MS = 60_000;

/**
 * One reconcile pass. First asks by id about predictions due in the open set, then walks
 * `GET /v1/predictions` (newest first) down to the last walk's newest prediction or the window's
 * start, resuming an unfinished walk first. Every terminal prediction the ledger has not recorded,
 * completed longer than the grace period ago and before the oldest delivery still waiting for a
 * worker, is stored as a delivery with a deterministic webhook id and `source: 'reconcile'`.
 * Never throws for an API failure: the report says where it stopped.
 */
export async function runReconcilePass(options: PassOptions): Promise<PassReport> {
  const started = performance.now();
  const now = (options.now ?? Date.now)();
  const pass = new Pass(options, now);
  const report = pass.report;
  try {
    pass.waitingSince = await oldestWaitingSince(
      options.redis,
      options.shards?.queuePrefixes ?? options.prefix,
    );
    await pass.askOpen();
    await pass.walk(await readWalkState(options.redis, options.prefix));
  } catch (error) {
    if (error instanceof BudgetExhaustedError) report.stoppedBy = 'budget';
    else if (error instanceof ReplicateApiError) {
      report.stoppedBy = 'api-error';
      report.error = error.message;
    } else throw error;
  }
  report.requests = options.api.requests;
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

class Pass {
  readonly report: PassReport = {
    pages: 0,
    gets: 0,
    requests: 0,
    seen: 0,
    recorded: 0,
    deferred: 0,
    reconciled: [],
    stoppedBy: 'end',
    seconds: 0,
  };
  waitingSince: number | undefined;
  private readonly openKey: string;

  constructor(
    private readonly options: PassOptions,
    private readonly now: number,
  ) {
    this.openKey = reconcileKeys.open(options.prefix);
  }

  /** Asks by id about the open set's predictions that are due, at most half the budget. */
  async askOpen(): Promise<void> {
    const { redis, api } = this.options;
    const limit = Math.floor(api.remaining / 2);
    if (limit < 1) return;
    const due = await redis.zrangebyscore(this.openKey, '-inf', this.now, 'LIMIT', 0, limit);
    for (const id of due) {
      const prediction = await api.getPrediction(id);
      this.report.gets += 1;
      if (!prediction) {
        if (!this.options.dryRun) await redis.zrem(this.openKey, id);
        continue;
      }
      await this.consider([prediction], 'get');
    }
  }

  /** Walks the list, newest first, down to where the last walk began or the window's start. */
  async walk(state: WalkState): Promise<void> {
    const windowStart = this.now - this.options.windowMs;
    let url = state.resume?.url;
    let top = state.resume?.top;
    const stop = state.resume?.stop ?? Math.max(windowStart, state.highWater - OVERLAP_MS);
    try {
      for (;;) {
        const page: PredictionPage = await this.options.api.listPredictions(url);
        this.report.pages += 1;
        const inRange: Prediction[] = [];
        let reachedStop = false;
        for (const prediction of page.results) {
          const created = Date.parse(prediction.created_at);
          if (created < stop) {
            reachedStop = true;
            break;
          }
          top ??= created;
          inRange.push(prediction);
        }
        await this.consider(inRange, 'list');
        if (reachedStop || !page.next) {
          this.report.stoppedBy = !reachedStop
            ? 'end'
            : stop === windowStart
              ? 'window'
              : 'high-water';
          await this.saveWalk({ highWater: Math.max(state.highWater, top ?? 0) });
          return;
        }
        url = page.next;
      }
    } catch (error) {
      // Resume here next pass: the page that could not be read is read first.
      if (url !== undefined || top !== undefined) {
        const resume = { url: url ?? '', top: top ?? this.now, stop };
        if (resume.url) await this.saveWalk({ highWater: state.highWater, resume });
      }
      throw error;
    }
  }

  private async saveWalk(state: WalkState): Promise<void> {
    if (!this.options.dryRun) await writeWalkState(this.options.redis, this.options.prefix, state);
  }

  /** Sorts predictions into recorded, deferred and reconciled. */
  async consider(predictions: Prediction[], via: 'list' | 'get'): Promise<void> {
    const { redis, prefix, dryRun } = this.options;
    this.report.seen += predictions.length;
    const finished = predictions.filter((p) => isTerminal(p.status));
    const recorded = await recordedStatuses(
      redis,
      this.options.shards?.recordPrefixOf ?? prefix,
      finished.map((p) => p.id),
    );
    for (const prediction of predictions) {
      if (!isTerminal(prediction.status)) {
        if (Date.parse(prediction.created_at) < this.now - this.options.windowMs) {
          // Unfinished past the window (predictions time out after 30 minutes): stop asking.
          if (!dryRun) await redis.zrem(this.openKey, prediction.id);
          continue;
        }
        this.report.deferred += 1;
        // From the list, an unfinished one keeps its place; from a get, it is asked about later.
        await this.defer(prediction, this.now + this.options.graceMs, via === 'list');
        continue;
      }
      const index = finished.indexOf(prediction);
      if (recorded[index] !== undefined) {
        this.report.recorded += 1;
        if (!dryRun) await redis.zrem(this.openKey, prediction.id);
        continue;
      }
      const completed = Date.parse(prediction.completed_at ?? '') || this.now;
      const webhookMayCome = completed > this.now - this.options.graceMs;
      const webhookMayWait =
        this.waitingSince !== undefined && completed >= this.waitingSince - REPLICATE_RETRY_MS;
      if (webhookMayCome || webhookMayWait) {
        this.report.deferred += 1;
        await this.defer(prediction, Math.max(completed + this.options.graceMs, this.now + 1000));
        continue;
      }
      await this.deliver(prediction);
    }
  }

  private async defer(prediction: Prediction, at: number, keepEarlier = false): Promise<void> {
    if (this.options.dryRun) return;
    if (keepEarlier) await this.options.redis.zadd(this.openKey, 'NX', at, prediction.id);
    else await this.options.redis.zadd(this.openKey, at, prediction.id);
  }

  private async deliver(prediction: Prediction): Promise<void> {
    const { redis, prefix, store, dryRun } = this.options;
    const webhookId = reconcileWebhookId(prediction.id, prediction.status);
    let outcome: Reconciled['outcome'] = 'dry-run';
    if (dryRun || !store) {
      const seenPrefix = this.options.shards?.recordPrefixOf(prediction.id) ?? prefix;
      if ((await redis.get(keys.seen(seenPrefix, webhookId))) === 's') outcome = 'duplicate';
    } else {
      outcome = await store.enqueueDelivery({
        webhookId,
        timestamp: Math.floor(this.now / 1000),
        receivedAt: this.now,
        query: {},
        prediction,
        source: 'reconcile',
      });
      await redis.zrem(this.openKey, prediction.id);
    }
    this.report.reconciled.push({
      predictionId: prediction.id,
      status: prediction.status,
      webhookId,
      completedAt: prediction.completed_at,
      outcome,
    });
  }
}
