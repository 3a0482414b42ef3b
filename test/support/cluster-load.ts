import { loadConfig } from '../../src/core/config.js';
import type { Prediction } from '../../src/core/prediction.js';
import { type InletWorker, startWorker } from '../../src/workers/worker.js';
import { samplePrediction, signedHeaders, webhookId } from './deliveries.js';
import { CapturedLogs } from './ingest.js';

/**
 * Deliveries sent without pause by `concurrency` senders, each a new prediction's terminal
 * state, for the cluster chaos tests. A 202 or 200 is an acknowledgement, kept in `accepted`;
 * anything else (503 during an outage, a refused connection) is counted and not retried.
 */
export class ClusterLoad {
  /** Acknowledged `webhook-id` → prediction id. */
  readonly accepted = new Map<string, string>();
  readonly answers = new Map<string, number>();
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    private readonly secret: string,
    private readonly concurrency = 6,
  ) {}

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.concurrency }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  count(answer: string): number {
    return this.answers.get(answer) ?? 0;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const prediction = samplePrediction('succeeded');
      const id = webhookId();
      const body = JSON.stringify(prediction);
      let answer: string;
      try {
        const response = await fetch(this.url, {
          method: 'POST',
          headers: signedHeaders(this.secret, body, id),
          body,
        });
        await response.arrayBuffer();
        answer = String(response.status);
      } catch {
        answer = 'error';
      }
      if (answer === '202' || answer === '200') this.accepted.set(id, prediction.id);
      this.answers.set(answer, this.count(answer) + 1);
    }
  }
}

/** An in-process worker whose one processor records each run: webhook id → runs. */
export async function recordingWorker(
  env: Record<string, string>,
): Promise<{ worker: InletWorker; runs: Map<string, number> }> {
  const runs = new Map<string, number>();
  const worker = await startWorker({
    config: loadConfig({ ...env, LOG_LEVEL: 'silent' }),
    logger: new CapturedLogs().logger,
    processors: [
      {
        name: 'record',
        handle(_prediction: Prediction, ctx) {
          runs.set(ctx.webhookId, (runs.get(ctx.webhookId) ?? 0) + 1);
        },
      },
    ],
  });
  return { worker, runs };
}
