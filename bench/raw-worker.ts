import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/core/config.js';
import { deliveryRetention, QUEUE_NAME } from '../src/core/job.js';

/**
 * The worker inlet's is measured against: a bare BullMQ Worker with a no-op function, on the same
 * queue shape and Redis, with the same concurrency and the same retention of finished jobs.
 * Configured by REDIS_URL, INLET_PREFIX, WORKER_CONCURRENCY; run as its own process, as
 * `inlet worker` is.
 */
const connection = new Redis(process.env.REDIS_URL ?? '', { maxRetriesPerRequest: null });
const worker = new Worker(QUEUE_NAME, async () => undefined, {
  connection,
  prefix: process.env.INLET_PREFIX,
  concurrency: Number(process.env.WORKER_CONCURRENCY ?? 10),
  ...deliveryRetention(loadConfig({ REDIS_URL: process.env.REDIS_URL })),
});
worker.on('error', (error) => process.stderr.write(`raw worker: ${error.message}\n`));
process.on('SIGTERM', () => {
  worker.close().finally(() => process.exit(0));
});
