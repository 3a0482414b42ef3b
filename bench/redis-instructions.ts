import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/core/config.js';
import { RedisServer } from '../src/core/redis-server.js';
import { DeliveryPool } from './deliveries.js';
import { driveWebhooks } from './load.js';
import {
  deliveriesQueue,
  fill,
  QUEUED_STATES,
  startWorkerProcess,
  type WorkerKind,
  waitForWorkers,
  waitUntilDrained,
} from './worker-rounds.js';

export interface InstructionSettings {
  jobs: number;
  pairs: number;
  concurrency: number;
  cpus: string | undefined;
  workDir: string;
  log: (line: string) => void;
}

export interface InstructionRound {
  kind: WorkerKind;
  /** Redis's instructions per delivery, what it did while idle for as long taken out. */
  instructions: number;
  seconds: number;
}

/** How often the bench asks whether the queue is empty while Redis is being counted. */
const POLL_MS = 500;
/** Deliveries each server stores before Redis is counted. */
export const WARMUP_STORES = 100;
/** How long Redis is counted idle (workers connected, queue paused) before each round. */
const IDLE_MS = 2_000;

/** Whether valgrind's callgrind and its control program are installed. */
export function callgrindAvailable(): boolean {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Redis's work per delivery for raw BullMQ's worker and `inlet worker`, counted in instructions
 * by callgrind: a second private redis-server runs under valgrind (about 50 times slower), and
 * each round counts what it executes from the queue's resumption until it is empty. CPU time on
 * a shared machine moved by 2x between rounds of the same code here; instruction counts of the
 * same code and load differ by under 1 %, so the ratio of two kinds is seen without the noise.
 * They are not time: a cache miss costs no instruction, so the CPU-time rows stay the target's
 * measure, and this one shows what a change did.
 */
export async function runInstructionRounds(
  settings: InstructionSettings,
): Promise<InstructionRound[]> {
  const { server, redis, counter } = await startCountedRedis(settings.workDir, settings.cpus);
  const config = loadConfig({ REDIS_URL: server.url });
  const rounds: InstructionRound[] = [];
  try {
    for (let pair = 1; pair <= settings.pairs; pair++) {
      for (const kind of ['raw BullMQ', 'inlet'] as const) {
        await redis.flushall();
        const queue = deliveriesQueue(redis);
        await queue.pause();
        await fill(queue, redis, settings.jobs, config);
        const worker = startWorkerProcess(kind, 0, { ...settings, redisUrl: server.url });
        try {
          await waitForWorkers(queue, 1, [worker]);
          // What Redis does for connected workers and the bench's polling, without deliveries.
          counter.zero();
          const idleStarted = performance.now();
          while (performance.now() - idleStarted < IDLE_MS) {
            await queue.getJobCounts(...QUEUED_STATES); // as waitUntilDrained polls
            await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          }
          const idlePerSecond = counter.dump() / ((performance.now() - idleStarted) / 1000);
          counter.zero();
          const started = performance.now();
          await queue.resume();
          await waitUntilDrained(queue, [worker], 600_000, POLL_MS);
          const seconds = (performance.now() - started) / 1000;
          const busy = counter.dump() - idlePerSecond * seconds;
          const round = { kind, instructions: busy / settings.jobs, seconds };
          rounds.push(round);
          settings.log(
            `instructions round ${pair} ${kind} worker: Redis ${Math.round(round.instructions / 1000)}k instructions/delivery (${settings.jobs} in ${seconds.toFixed(1)} s under callgrind)`,
          );
        } finally {
          await worker.stop();
          await queue.close();
        }
      }
    }
  } finally {
    redis.disconnect();
    await server.stop();
  }
  return rounds;
}

export type StoreKind = 'Queue.add' | 'inlet';

export interface StoreInstructionRound {
  /** `Queue.add`: the naive handler's store; `inlet`: `inlet ingest`'s. */
  kind: StoreKind;
  /** Redis's instructions per stored delivery, what it did while idle for as long taken out. */
  instructions: number;
  seconds: number;
}

/** An HTTP server storing deliveries in the Redis it was started with. */
export interface StoringServer {
  url: string;
  stop(): Promise<void>;
}

export interface StoreInstructionSettings {
  deliveries: number;
  connections: number;
  secret: string;
  cpus: string | undefined;
  workDir: string;
  /** Starts the naive handler or `inlet ingest` on `redisUrl`, answering once it is up. */
  startServer: (kind: StoreKind, redisUrl: string) => Promise<StoringServer>;
  log: (line: string) => void;
}

/**
 * Redis's work per stored delivery for the naive handler (`Queue.add`) and `inlet ingest`,
 * counted in instructions as {@link runInstructionRounds} counts the workers': each server, on a
 * Redis under callgrind, takes `deliveries` unique signed deliveries over `connections`
 * connections, and Redis is counted from the first request to the last answer. Through the real
 * servers, so that how each batches its writes to Redis counts too.
 */
export async function runStoreInstructionRounds(
  settings: StoreInstructionSettings,
): Promise<StoreInstructionRound[]> {
  const { server, redis, counter } = await startCountedRedis(settings.workDir, settings.cpus);
  const rounds: StoreInstructionRound[] = [];
  try {
    for (const kind of ['Queue.add', 'inlet'] as const) {
      await redis.flushall();
      const storing = await settings.startServer(kind, server.url);
      try {
        const pool = new DeliveryPool(settings.secret);
        pool.refill(WARMUP_STORES + settings.deliveries);
        // Not counted: the first calls load and compile the scripts, once per Redis.
        await driveWebhooks(pool, {
          baseUrl: storing.url,
          connections: settings.connections,
          amount: WARMUP_STORES,
          seconds: 600,
        });
        counter.zero();
        const idleStarted = performance.now();
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
        const idlePerSecond = counter.dump() / ((performance.now() - idleStarted) / 1000);
        counter.zero();
        const started = performance.now();
        const result = await driveWebhooks(pool, {
          baseUrl: storing.url,
          connections: settings.connections,
          amount: settings.deliveries,
          seconds: 600,
        });
        const seconds = (performance.now() - started) / 1000;
        const busy = counter.dump() - idlePerSecond * seconds;
        const stored = result.total - result.non2xx - result.errors - result.timeouts;
        if (stored !== settings.deliveries) {
          throw new Error(
            `${kind}: ${stored} of ${settings.deliveries} deliveries answered 2xx under callgrind`,
          );
        }
        const round = { kind, instructions: busy / settings.deliveries, seconds };
        rounds.push(round);
        settings.log(
          `instructions ${kind}: Redis ${Math.round(round.instructions / 1000)}k instructions/stored delivery (${settings.deliveries} in ${seconds.toFixed(1)} s under callgrind)`,
        );
      } finally {
        await storing.stop();
      }
    }
  } finally {
    redis.disconnect();
    await server.stop();
  }
  return rounds;
}

/** A private redis-server under callgrind, a client of it and its instruction counter. */
async function startCountedRedis(workDir: string, cpus: string | undefined) {
  const dir = mkdtempSync(join(workDir, 'callgrind-'));
  const server = await RedisServer.start({
    dir,
    launcher: [
      'valgrind',
      '--tool=callgrind',
      `--callgrind-out-file=${join(dir, 'callgrind.out')}`,
      '--dump-instr=no',
    ],
    ...(cpus ? { cpus } : {}),
  });
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  return { server, redis, counter: new Callgrind(server.pid, dir) };
}

/** callgrind_control on one process: zero its counts, dump them and read the total. */
class Callgrind {
  private dumps = 0;

  constructor(
    private readonly pid: number,
    private readonly dir: string,
  ) {}

  zero(): void {
    execFileSync('callgrind_control', ['-z', String(this.pid)], { stdio: 'ignore' });
  }

  /** Instructions since the last zero. */
  dump(): number {
    execFileSync('callgrind_control', ['-d', String(this.pid)], { stdio: 'ignore' });
    this.dumps++;
    const file = join(this.dir, `callgrind.out.${this.dumps}`);
    if (!existsSync(file)) throw new Error(`callgrind wrote no dump ${file}`);
    const summary = /^summary: (\d+)$/m.exec(readFileSync(file, 'utf8'));
    if (!summary) throw new Error(`callgrind dump ${file} has no summary line`);
    return Number(summary[1]);
  }
}
