import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { DeliveryPool } from './deliveries.js';
import { wallClockMs } from './load.js';
import type { BenchProcess } from './processes.js';
import { compactAof, persistenceField } from './redis.js';
import { deliveriesQueue, startWorkerProcess, waitForWorkers } from './worker-rounds.js';

export interface EndToEndSettings {
  redis: Redis;
  redisUrl: string;
  ingestUrl: string;
  secret: string;
  rate: number;
  seconds: number;
  /**
   * The least seconds sent at the same rate before the measured ones, not counted: a freshly
   * started worker runs unoptimised code for its first seconds and falls behind, which is
   * start-up, not the steady state the figure is about. The warm-up goes on until the pipeline
   * has caught up (see {@link caughtUp}), for at most {@link MAX_WARMUP_FACTOR} times this.
   */
  warmupSeconds: number;
  concurrency: number;
  processes: number;
  cpus: string | undefined;
  workDir: string;
  log: (line: string) => void;
}

export interface EndToEndResult {
  rate: number;
  /** Deliveries sent in the measured seconds (after the warm-up). */
  sent: number;
  /** The warm-up's least length, s. */
  warmupSeconds: number;
  /**
   * Seconds from the first delivery sent until the pipeline had caught up with its cold start
   * (the warm-up's end); NaN when it had not within the longest warm-up.
   */
  caughtUpSeconds: number;
  /** Deliveries answered 202 whose processor start was seen. */
  measured: number;
  /** 202 → processor start, milliseconds. */
  p50: number;
  p99: number;
  max: number;
  /** Deliveries answered 202 whose processor never started within the wait. */
  missing: number;
  /** 503 answers: the ingest shedding load it cannot store in time, as the contract says. */
  unavailable: number;
  /** Answers other than 202 and 503, and request errors. */
  failures: number;
  /** Send → 202, milliseconds, as the sender saw it. */
  ackP99: number;
  /**
   * AOF rewrites Redis started during the run, warm-up included: each forks Redis and runs
   * beside it, which on a 2-core host shows in the tail.
   */
  aofRewrites: number;
}

/**
 * End-to-end latency at a steady rate: deliveries sent at `rate` per second, evenly paced (not
 * in bursts, as a rate-limited autocannon sends them), through the running ingest and `inlet
 * worker` with the recording no-op processor; each 202's arrival is joined with its processor's
 * start time.
 */
export async function runEndToEnd(settings: EndToEndSettings): Promise<EndToEndResult> {
  const startsFile = join(settings.workDir, `processor-starts-${settings.rate}.txt`);
  await settings.redis.flushall();
  // From a compact AOF, as when this part runs alone: after the other parts' rounds, the rewrite
  // their growth set off fell in the measured seconds (send → 202 p99 35–82 ms in three of four
  // full runs; docs/performance.md).
  await compactAof(settings.redis);
  const queue = deliveriesQueue(settings.redis);
  const workers: BenchProcess[] = Array.from({ length: settings.processes }, (_, i) =>
    startWorkerProcess('inlet', i, settings, { INLET_BENCH_STARTS: startsFile }),
  );
  try {
    await waitForWorkers(queue, settings.processes, workers);
    const rewritesBefore = await persistenceField(settings.redis, 'aof_rewrites');
    const sent = await sendPaced(settings, startsFile);
    const starts = await waitForStarts(startsFile, sent.acked.size + sent.warmupAcked);
    const rewrites = (await persistenceField(settings.redis, 'aof_rewrites')) - rewritesBefore;
    const latencies: number[] = [];
    for (const [id, ackedAt] of sent.acked) {
      const started = starts.get(id);
      if (started !== undefined) latencies.push(started - ackedAt);
    }
    latencies.sort((a, b) => a - b);
    const result: EndToEndResult = {
      rate: settings.rate,
      sent: sent.count - sent.warmupCount,
      warmupSeconds: settings.warmupSeconds,
      caughtUpSeconds: sent.caughtUpSeconds,
      measured: latencies.length,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: latencies.at(-1) ?? Number.NaN,
      missing: sent.acked.size - latencies.length,
      unavailable: sent.unavailable,
      failures: sent.failures,
      ackP99: percentile(
        sent.ackLatencies.sort((a, b) => a - b),
        0.99,
      ),
      aofRewrites: rewrites,
    };
    const warmup = Number.isNaN(result.caughtUpSeconds)
      ? `not caught up after a ${MAX_WARMUP_FACTOR * settings.warmupSeconds} s warm-up`
      : `caught up ${result.caughtUpSeconds.toFixed(1)} s after the first delivery`;
    settings.log(
      `end-to-end at ${settings.rate}/s: ${warmup}; p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms (${result.measured} deliveries, ${result.missing} missing, ${result.unavailable} answered 503, ${result.failures} failed)`,
    );
    return result;
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await queue.close();
  }
}

/** The longest warm-up, in times its least length. */
export const MAX_WARMUP_FACTOR = 5;
/**
 * The pipeline has caught up when every warm-up delivery answered at least this long ago has
 * started (the processor writes its starts down every 100 ms).
 */
export const CAUGHT_UP_MS = 250;

interface Sent {
  /** Every delivery sent, warm-up included. */
  count: number;
  warmupCount: number;
  /** Warm-up deliveries answered 202: processed, but not measured. */
  warmupAcked: number;
  caughtUpSeconds: number;
  unavailable: number;
  failures: number;
  /** webhook-id → wall-clock ms its 202 arrived, for the measured deliveries. */
  acked: Map<string, number>;
  ackLatencies: number[];
}

/**
 * Sends `rate` deliveries a second, spread evenly over each millisecond tick: first a warm-up,
 * at least `warmupSeconds` long and until the pipeline has caught up with its cold start
 * ({@link caughtUp}), then `seconds` of measured deliveries.
 */
async function sendPaced(settings: EndToEndSettings, startsFile: string): Promise<Sent> {
  const measuredCount = settings.rate * settings.seconds;
  const pool = new DeliveryPool(settings.secret);
  // Deliveries past these (a longer warm-up) are signed as they are sent.
  pool.refill(Math.round(settings.rate * settings.warmupSeconds) + measuredCount);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL('/webhooks/replicate', settings.ingestUrl);
  const sent: Sent = {
    count: 0,
    warmupCount: 0,
    warmupAcked: 0,
    caughtUpSeconds: Number.NaN,
    unavailable: 0,
    failures: 0,
    acked: new Map(),
    ackLatencies: [],
  };
  /** webhook-id → wall-clock ms its 202 arrived, for the warm-up deliveries. */
  const warmupAcks = new Map<string, number>();
  let measuring = false;
  let total = Number.POSITIVE_INFINITY;
  let settled = 0;
  let finish: () => void = () => undefined;
  const allSettled = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const settle = () => {
    settled += 1;
    if (settled === total) finish();
  };
  const send = () => {
    const delivery = pool.take();
    const measured = measuring;
    const startedAt = wallClockMs();
    const req = request(url, { method: 'POST', agent, headers: delivery.headers }, (res) => {
      res.resume();
      res.on('end', () => {
        const at = wallClockMs();
        if (res.statusCode === 202 && !measured) {
          sent.warmupAcked += 1;
          warmupAcks.set(delivery.webhookId, at);
        } else if (res.statusCode === 202) {
          sent.acked.set(delivery.webhookId, at);
          sent.ackLatencies.push(at - startedAt);
        } else if (res.statusCode === 503) {
          sent.unavailable += 1;
        } else {
          sent.failures += 1;
        }
        settle();
      });
    });
    req.on('error', () => {
      sent.failures += 1;
      settle();
    });
    req.end(delivery.body);
    sent.count += 1;
  };
  const began = performance.now();
  let checkedAt = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - began;
      if (!measuring && elapsed - checkedAt >= 250) {
        // Checked from the start, so that the catch-up time is when the backlog was last gone.
        checkedAt = elapsed;
        if (!caughtUp(startsFile, warmupAcks)) sent.caughtUpSeconds = Number.NaN;
        else if (Number.isNaN(sent.caughtUpSeconds)) sent.caughtUpSeconds = elapsed / 1000;
        const warm = elapsed >= settings.warmupSeconds * 1000;
        const longest = elapsed >= MAX_WARMUP_FACTOR * settings.warmupSeconds * 1000;
        if ((warm && !Number.isNaN(sent.caughtUpSeconds)) || longest) {
          measuring = true;
          sent.warmupCount = sent.count;
          total = sent.count + measuredCount;
          if (settled === total) finish();
        }
      }
      const due = Math.min(total, Math.floor((elapsed * settings.rate) / 1000));
      while (sent.count < due) send();
      if (sent.count >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await allSettled;
  agent.destroy();
  return sent;
}

/**
 * Whether every delivery in `acks` answered at least {@link CAUGHT_UP_MS} ago has started: the
 * backlog a cold worker (and ingest) built up is gone.
 */
function caughtUp(startsFile: string, acks: ReadonlyMap<string, number>): boolean {
  const starts = readStarts(startsFile);
  const before = wallClockMs() - CAUGHT_UP_MS;
  for (const [id, ackedAt] of acks) {
    if (ackedAt <= before && !starts.has(id)) return false;
  }
  return true;
}

/**
 * Reads the processor's start records until `expected` are there. A backlog (workers slower than
 * the rate) is waited for as long as it shrinks; 10 s without a new start ends the wait.
 */
async function waitForStarts(file: string, expected: number): Promise<Map<string, number>> {
  let starts = new Map<string, number>();
  let progressAt = Date.now();
  while (Date.now() - progressAt < 10_000) {
    const seen = readStarts(file);
    if (seen.size > starts.size) progressAt = Date.now();
    starts = seen;
    if (starts.size >= expected) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return starts;
}

function readStarts(file: string): Map<string, number> {
  const starts = new Map<string, number>();
  if (!existsSync(file)) return starts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    // A delivery retried after a failure is recorded again; its first start is what counts.
    const id = line.slice(0, space);
    if (!starts.has(id)) starts.set(id, Number(line.slice(space + 1)));
  }
  return starts;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}
