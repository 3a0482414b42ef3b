import { join, resolve } from 'node:path';
import { type JobType, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadConfig } from '../src/core/config.js';
import { type DeliveryJob, QUEUE_NAME } from '../src/core/job.js';
import type { Prediction } from '../src/core/prediction.js';
import { DeliveryEnqueuer } from '../src/ingest/enqueue-delivery.js';
import { CpuMeter } from './cpu-usage.js';
import { predictionBody } from './deliveries.js';
import { BenchProcess } from './processes.js';

export type WorkerKind = 'raw BullMQ' | 'inlet';

export interface WorkerSettings {
  /** The bench's own client on the bench Redis. */
  redis: Redis;
  redisUrl: string;
  /** The bench Redis's process, whose CPU each round measures too. */
  redisPid: number;
  jobs: number;
  pairs: number;
  /** Jobs each worker process runs at once; the same for both kinds. */
  concurrency: number;
  /** Worker processes of each kind per round. */
  processes: number;
  cpus: string | undefined;
  workDir: string;
  /** Node options for `inlet worker` processes only, e.g. `--cpu-prof` to profile them. */
  inletNodeArgs?: string[];
  log: (line: string) => void;
}

export interface WorkerRound {
  kind: WorkerKind;
  deliveriesPerSecond: number;
  seconds: number;
  failed: number;
  /**
   * CPU time per delivery of the worker processes and of Redis, from /proc: steadier than
   * throughput on a shared machine, because time other processes take is not counted.
   */
  workerUs: number;
  redisUs: number;
}

/** The processor module `inlet worker` loads: a no-op, written as a user's compiled processor. */
export const NOOP_PROCESSOR = resolve('bench/fixtures/noop-processor.mjs');

/** Starts one worker process of `kind`, logging to a file in `workDir`. */
export function startWorkerProcess(
  kind: WorkerKind,
  index: number,
  settings: Pick<WorkerSettings, 'redisUrl' | 'concurrency' | 'cpus' | 'workDir' | 'inletNodeArgs'>,
  env: NodeJS.ProcessEnv = {},
): BenchProcess {
  const common = {
    REDIS_URL: settings.redisUrl,
    WORKER_CONCURRENCY: String(settings.concurrency),
    LOG_LEVEL: 'info',
    ...env,
  };
  const logFile = join(
    settings.workDir,
    `${kind === 'inlet' ? 'worker' : 'raw-worker'}-${index}.log`,
  );
  if (kind === 'inlet') {
    return new BenchProcess(
      'inlet worker',
      process.execPath,
      [...(settings.inletNodeArgs ?? []), 'dist/cli/main.js', 'worker'],
      {
        env: { ...common, INLET_PROCESSORS: NOOP_PROCESSOR },
        logFile,
        cpus: settings.cpus,
      },
    );
  }
  return new BenchProcess(
    'raw BullMQ worker',
    process.execPath,
    ['--import', 'tsx', 'bench/raw-worker.ts'],
    { env: { ...common, INLET_PREFIX: 'inlet' }, logFile, cpus: settings.cpus },
  );
}

/** Opens the `deliveries` queue under inlet's default prefix on the bench's client. */
export function deliveriesQueue(redis: Redis): Queue<DeliveryJob> {
  return new Queue<DeliveryJob>(QUEUE_NAME, { connection: redis, prefix: 'inlet' });
}

/** Waits until `count` workers of the queue are connected (BullMQ names their connections). */
export async function waitForWorkers(queue: Queue, count: number, workers: BenchProcess[]) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const dead = workers.find((worker) => !worker.running);
    if (dead) throw new Error(`${dead.name} exited while starting`);
    if ((await queue.getWorkers()).length >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${count} worker(s) did not connect within 20 s`);
}

/**
 * Worker throughput, alternating raw BullMQ and `inlet worker` rounds on the same Redis: each
 * round fills the paused queue with `jobs` deliveries as the ingest stores them, starts the
 * workers, resumes the queue and times until it is empty.
 */
export async function runWorkerRounds(settings: WorkerSettings): Promise<WorkerRound[]> {
  const config = loadConfig({ REDIS_URL: settings.redisUrl });
  const rounds: WorkerRound[] = [];
  for (let pair = 1; pair <= settings.pairs; pair++) {
    for (const kind of ['raw BullMQ', 'inlet'] as const) {
      await settings.redis.flushall();
      const queue = deliveriesQueue(settings.redis);
      await queue.pause();
      await fill(queue, settings.redis, settings.jobs, config);
      const workers = Array.from({ length: settings.processes }, (_, i) =>
        startWorkerProcess(kind, i, settings),
      );
      try {
        await waitForWorkers(queue, settings.processes, workers);
        const meter = new CpuMeter({
          redis: settings.redisPid,
          ...Object.fromEntries(workers.map((worker, i) => [`worker${i}`, worker.pid])),
        });
        const started = performance.now();
        await queue.resume();
        await waitUntilDrained(queue, workers);
        const seconds = (performance.now() - started) / 1000;
        const used = meter.read();
        const workerSeconds = workers.reduce((sum, _, i) => sum + (used[`worker${i}`] ?? 0), 0);
        const failed = await queue.getFailedCount();
        const round: WorkerRound = {
          kind,
          deliveriesPerSecond: settings.jobs / seconds,
          seconds,
          failed,
          workerUs: (workerSeconds / settings.jobs) * 1e6,
          redisUs: ((used.redis ?? 0) / settings.jobs) * 1e6,
        };
        rounds.push(round);
        settings.log(
          `round ${pair} ${kind} worker: ${Math.round(round.deliveriesPerSecond)} deliveries/s (${settings.jobs} in ${seconds.toFixed(2)} s), worker ${Math.round(round.workerUs)} µs CPU/delivery, redis ${Math.round(round.redisUs)}${failed ? `, ${failed} FAILED` : ''}`,
        );
      } finally {
        await Promise.all(workers.map((worker) => worker.stop()));
        await queue.close();
      }
    }
  }
  return rounds;
}

/** Stores `jobs` deliveries as the ingest does (DeliveryEnqueuer: storeDelivery-11), 200 at a time. */
export async function fill(
  queue: Queue<DeliveryJob>,
  redis: Redis,
  jobs: number,
  config: ReturnType<typeof loadConfig>,
) {
  const enqueuer = new DeliveryEnqueuer(queue, redis, config);
  const batch = 200;
  for (let done = 0; done < jobs; done += batch) {
    const size = Math.min(batch, jobs - done);
    const stored = await Promise.all(
      Array.from({ length: size }, (_, i) => {
        const predictionJson = predictionBody();
        const delivery: DeliveryJob = {
          webhookId: `msg_fill${done + i}_${Date.now().toString(36)}`,
          timestamp: Math.floor(Date.now() / 1000),
          receivedAt: Date.now(),
          query: {},
          prediction: JSON.parse(predictionJson) as Prediction,
        };
        return enqueuer.enqueueDelivery(delivery, predictionJson);
      }),
    );
    if (stored.some((outcome) => outcome !== 'accepted')) throw new Error('bench fill: not stored');
  }
}

/** The states of a job not processed yet: a queue is drained when no job is in them. */
export const QUEUED_STATES: JobType[] = ['wait', 'active', 'delayed', 'prioritized'];

/** The jobs in `states` over all of `queues` (one queue a shard). */
export async function countJobs(queues: Queue[], states: JobType[]): Promise<number> {
  const counts = await Promise.all(queues.map((queue) => queue.getJobCounts(...states)));
  return counts.reduce(
    (sum, count) => sum + states.reduce((all, state) => all + (count[state] ?? 0), 0),
    0,
  );
}

/** Polls until no job waits, runs or is delayed; a dead worker fails the bench. */
export async function waitUntilDrained(
  queue: Queue,
  workers: BenchProcess[],
  timeoutMs = 120_000,
  pollMs = 10,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await queue.getJobCounts(...QUEUED_STATES);
    if (Object.values(counts).every((count) => count === 0)) return;
    const dead = workers.find((worker) => !worker.running);
    if (dead) throw new Error(`${dead.name} exited while the queue still had jobs`);
    if (Date.now() > deadline)
      throw new Error(`the queue did not drain: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
