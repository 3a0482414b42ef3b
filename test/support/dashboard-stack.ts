import { randomBytes } from 'node:crypto';
import { bullmq } from '../../src/core/commonjs-packages.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import type { IngestServer } from '../../src/ingest/server.js';
import { defineProcessor } from '../../src/workers/processor.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { makeSecret, samplePrediction, signedHeaders, webhookId } from './deliveries.js';
import { startReadyIngest } from './ingest.js';
import { TestRedis } from './redis-server.js';
import { waitFor } from './wait-for.js';

/** The ingest connects to Redis in the background and answers 503 until it has. */
export async function waitUntilReady(baseUrl: string): Promise<void> {
  await waitFor('the ingest ready', async () => {
    const response = await fetch(`${baseUrl}/readyz`);
    await response.arrayBuffer();
    return response.status === 200;
  });
}

/** What the flaky processor's first try throws: what the dashboard must show. */
export const DEAD_LETTER_REASON = 'export service refused the prediction: HTTP 422';

/**
 * A real redis-server, a real ingest with the dashboard on, and a real worker whose one processor
 * dead-letters each prediction's first delivery (`UnrecoverableError`) and succeeds on a retry:
 * what an operator meets after a downstream outage.
 */
export class DashboardStack {
  readonly token = `admin-${randomBytes(16).toString('hex')}`;
  readonly secret = makeSecret();
  readonly prefix = `dash-${randomBytes(4).toString('hex')}`;
  /** Prediction ids whose processor has refused once. */
  readonly refused = new Set<string>();
  /** Prediction ids whose processor has succeeded. */
  readonly succeeded = new Set<string>();
  redis!: TestRedis;
  ingest!: IngestServer;
  worker!: InletWorker;

  static async start(options: { adminToken?: boolean } = {}): Promise<DashboardStack> {
    const stack = new DashboardStack();
    stack.redis = await TestRedis.start();
    const env = {
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: stack.redis.url,
      REPLICATE_WEBHOOK_SECRET: stack.secret,
      INLET_PREFIX: stack.prefix,
      INLET_ATTEMPTS: '3',
      INLET_BACKOFF_MS: '10',
      ...(options.adminToken === false ? {} : { INLET_ADMIN_TOKEN: stack.token }),
    };
    const config = loadConfig(env);
    const logger = createLogger({ level: 'silent' });
    stack.ingest = await startReadyIngest({ config, logger, drainTimeoutMs: 1000 });
    stack.worker = await startWorker({ config, logger, processors: [stack.processor()] });
    await waitUntilReady(stack.ingest.url);
    return stack;
  }

  /** Posts one signed delivery whose first run is dead-lettered; resolves once it is failed. */
  async deadLetterOne(): Promise<{ webhookId: string; predictionId: string }> {
    const prediction = samplePrediction('succeeded');
    const body = JSON.stringify(prediction);
    const id = webhookId();
    const response = await fetch(`${this.ingest.url}/webhooks/replicate`, {
      method: 'POST',
      body,
      headers: signedHeaders(this.secret, body, id),
    });
    if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
    await this.waitForState(id, 'failed');
    return { webhookId: id, predictionId: prediction.id };
  }

  /** Polls the job's BullMQ state until it is `state`. */
  async waitForState(jobId: string, state: string): Promise<void> {
    await waitFor(`job ${jobId} ${state}`, async () => {
      const job = await this.ingest.queue.getJob(jobId);
      return (job ? await job.getState() : 'missing') === state;
    });
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.ingest?.close();
    await this.redis?.destroy();
  }

  private processor() {
    return defineProcessor({
      name: 'export-outputs',
      statuses: ['succeeded'],
      handle: async (prediction) => {
        if (!this.refused.has(prediction.id)) {
          this.refused.add(prediction.id);
          throw new bullmq.UnrecoverableError(DEAD_LETTER_REASON);
        }
        this.succeeded.add(prediction.id);
      },
    });
  }
}
