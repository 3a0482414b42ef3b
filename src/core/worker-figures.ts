import type { ChainableCommander, Redis } from 'ioredis';

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

/** Adds one processor run to a pipeline or transaction the caller executes. */
export function recordProcessorRun(
  tx: ChainableCommander,
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

/** Adds one worker event to a pipeline or transaction the caller executes. */
export function recordWorkerEvent(
  tx: ChainableCommander,
  prefix: string,
  event: WorkerEvent,
  by = 1,
) {
  tx.hincrby(figureKeys(prefix).events, event, by);
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
