import type { RedisClient as Redis } from './redis.js';

/**
 * Worker-side figures kept in Redis, so that the ingest's `/metrics` can export them for every
 * worker process at once: `docker compose up --scale worker=N` needs no scrape target per worker.
 *
 * Keys (all under `INLET_PREFIX`):
 * - `<prefix>:figures:runs`    HASH `<processor>|ok`, `<processor>|error` → count
 * - `<prefix>:figures:seconds` HASH `<processor>|sum` → total seconds,
 *                                   `<processor>|<i>` → runs in bucket i of {@link RUN_BUCKETS}
 *                                   (not cumulative; `i = RUN_BUCKETS.length` is +Inf)
 * - `<prefix>:figures:events`  HASH {@link WorkerEvent} → count
 */
export const RUN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Counted worker events. */
export type WorkerEvent =
  | 'processed'
  | 'retried'
  | 'dead_lettered'
  | 'skipped_after_terminal'
  | 'redriven';

export const figureKeys = (prefix: string) => ({
  runs: `${prefix}:figures:runs`,
  seconds: `${prefix}:figures:seconds`,
  events: `${prefix}:figures:events`,
});

/**
 * Where figures are added: a pipeline or transaction the caller executes, or a {@link FigureTally}
 * that adds them up in the process first.
 */
export interface FigureSink {
  hincrby(key: string, field: string, by: number): unknown;
  hincrbyfloat(key: string, field: string, by: number): unknown;
}

/** Adds one processor run to `tx`. */
export function recordProcessorRun(
  tx: FigureSink,
  prefix: string,
  processor: string,
  ok: boolean,
  seconds: number,
): void {
  const keys = figureKeys(prefix);
  const bucket = RUN_BUCKETS.findIndex((le) => seconds <= le);
  tx.hincrby(keys.runs, `${processor}|${ok ? 'ok' : 'error'}`, 1);
  tx.hincrbyfloat(keys.seconds, `${processor}|sum`, seconds);
  tx.hincrby(keys.seconds, `${processor}|${bucket === -1 ? RUN_BUCKETS.length : bucket}`, 1);
}

/** Adds one worker event to `tx`. */
export function recordWorkerEvent(tx: FigureSink, prefix: string, event: WorkerEvent, by = 1) {
  tx.hincrby(figureKeys(prefix).events, event, by);
}

/**
 * A worker's figures, added up in the process and written to Redis in one transaction every
 * `intervalMs` and on {@link FigureTally.close}. Writing them with each delivery cost a third of
 * the worker's Redis commands; these are counters for Prometheus, scraped every few seconds, so a
 * quarter-second delay costs nothing. A SIGKILLed worker loses at most that last quarter second
 * of counts; a failed write is kept and retried with the next one.
 */
export class FigureTally implements FigureSink {
  /** `key field` → what is not yet written, and whether it is written as a float. */
  private pending = new Map<string, { key: string; field: string; by: number; float: boolean }>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    intervalMs = 250,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  hincrby(key: string, field: string, by: number): void {
    this.add(key, field, by, false);
  }

  hincrbyfloat(key: string, field: string, by: number): void {
    this.add(key, field, by, true);
  }

  /** Writes what was added so far; resolves once Redis took it, or kept it for the next try. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  /**
   * Stops the timer and writes what is left, waiting at most `timeoutMs`: on a worker's
   * connection a write waits for Redis to come back, and a stopping worker must not wait for ever
   * for its counters.
   */
  async close(timeoutMs = 2_000): Promise<void> {
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.flush(), deadline]);
    clearTimeout(timer);
  }

  private add(key: string, field: string, by: number, float: boolean): void {
    const id = `${key} ${field}`;
    const entry = this.pending.get(id);
    if (entry) entry.by += by;
    else this.pending.set(id, { key, field, by, float });
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    const tx = this.redis.multi();
    for (const { key, field, by, float } of batch) {
      if (float) tx.hincrbyfloat(key, field, by);
      else tx.hincrby(key, field, by);
    }
    let results: Array<[Error | null, unknown]> | null = null;
    try {
      results = await tx.exec();
    } catch {
      // Not sent, or no answer (Redis away): kept for the next write.
    }
    // Only what was not written goes back, so that nothing is counted twice.
    batch.forEach((entry, index) => {
      if (!results || results[index]?.[0]) this.add(entry.key, entry.field, entry.by, entry.float);
    });
  }
}

export interface ProcessorFigures {
  ok: number;
  error: number;
  sum: number;
  /** Non-cumulative counts per bucket of {@link RUN_BUCKETS}, then +Inf. */
  buckets: number[];
}

export interface WorkerFigures {
  processors: Map<string, ProcessorFigures>;
  events: Partial<Record<WorkerEvent, number>>;
}

/** Reads every worker figure in one round trip. */
export async function readWorkerFigures(redis: Redis, prefix: string): Promise<WorkerFigures> {
  const keys = figureKeys(prefix);
  const results = await redis
    .multi()
    .hgetall(keys.runs)
    .hgetall(keys.seconds)
    .hgetall(keys.events)
    .exec();
  const [runs, seconds, events] = (results ?? []).map(
    ([error, value]) => (error ? {} : value) as Record<string, string>,
  );
  const processors = new Map<string, ProcessorFigures>();
  const entry = (name: string) => {
    let figures = processors.get(name);
    if (!figures) {
      figures = { ok: 0, error: 0, sum: 0, buckets: new Array(RUN_BUCKETS.length + 1).fill(0) };
      processors.set(name, figures);
    }
    return figures;
  };
  for (const [field, value] of Object.entries(runs ?? {})) {
    const [name, result] = splitField(field);
    if (result === 'ok' || result === 'error') entry(name)[result] = Number(value);
  }
  for (const [field, value] of Object.entries(seconds ?? {})) {
    const [name, part] = splitField(field);
    if (part === 'sum') entry(name).sum = Number(value);
    else if (/^[0-9]+$/.test(part)) entry(name).buckets[Number(part)] = Number(value);
  }
  const counted: Partial<Record<WorkerEvent, number>> = {};
  for (const [event, value] of Object.entries(events ?? {})) {
    counted[event as WorkerEvent] = Number(value);
  }
  return { processors, events: counted };
}

/** Splits `name|part` at the last `|`, so a processor name may itself hold one. */
function splitField(field: string): [string, string] {
  const at = field.lastIndexOf('|');
  return [field.slice(0, at), field.slice(at + 1)];
}
