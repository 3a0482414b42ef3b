import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { randomId, samplePrediction, signedHeaders } from '../support/deliveries.js';

const TERMINALS = ['succeeded', 'failed', 'canceled', 'aborted'] as const;

/** What the sender saw; a chaos run prints these and asserts on them. */
export interface SenderFigures {
  predictions: number;
  /** Requests sent, retries included. */
  deliveries: number;
  acknowledged: number;
  terminalAcknowledged: number;
  /** Terminal deliveries sent again after their acknowledgement, as Replicate may. */
  repeats: number;
  answered503: number;
  missingRetryAfter: number;
  other5xx: number;
  other4xx: number;
  connectionErrors: number;
  /** Terminal deliveries never acknowledged within the retry period. */
  terminalGivenUp: number;
}

export interface SenderOptions {
  secret: string;
  /** The ingests' ports on 127.0.0.1; tries go round them, so a retry fails over. */
  ports: number[];
  /** How long one terminal delivery is retried (Replicate: about a minute). */
  retryForMs: number;
}

/**
 * Delivers predictions the way Replicate does: `starting`, `processing`, then a terminal state,
 * each a signed message of its own. Only the terminal one is retried, on 503 and connection
 * errors, with jittered exponential backoff; one in ten is sent again once acknowledged, with
 * the same `webhook-id` and with a new one.
 */
export class ReplicateSender {
  readonly figures: SenderFigures = {
    predictions: 0,
    deliveries: 0,
    acknowledged: 0,
    terminalAcknowledged: 0,
    repeats: 0,
    answered503: 0,
    missingRetryAfter: 0,
    other5xx: 0,
    other4xx: 0,
    connectionErrors: 0,
    terminalGivenUp: 0,
  };
  /** Prediction id → the terminal status acknowledged for it. */
  readonly acknowledged = new Map<string, string>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private next = 0;

  constructor(private readonly options: SenderOptions) {}

  /** Sends one prediction after another until `until` (a `performance.now()` time). */
  async run(until: number): Promise<void> {
    while (performance.now() < until) {
      const id = randomId();
      const n = ++this.figures.predictions;
      for (const status of ['starting', 'processing'] as const) {
        await this.deliver(JSON.stringify(samplePrediction(status, id)), messageId(), false);
      }
      const terminal = TERMINALS[n % TERMINALS.length] as string;
      const body = JSON.stringify({ ...samplePrediction('succeeded', id), status: terminal });
      const webhookId = messageId();
      if (!(await this.deliver(body, webhookId, true))) continue;
      this.acknowledged.set(id, terminal);
      this.figures.terminalAcknowledged++;
      if (n % 10 === 0) {
        this.figures.repeats += 2;
        await this.deliver(body, webhookId, true);
        await this.deliver(body, messageId(), true);
      }
    }
  }

  close(): void {
    this.agent.destroy();
  }

  /** Delivers once; a terminal delivery is retried with backoff, failing over between ingests. */
  private async deliver(body: string, webhookId: string, terminal: boolean): Promise<boolean> {
    const { figures } = this;
    const deadline = performance.now() + this.options.retryForMs;
    for (let attempt = 0; ; attempt++) {
      const port = this.options.ports[this.next++ % this.options.ports.length] as number;
      figures.deliveries++;
      const answer = await this.post(
        port,
        body,
        signedHeaders(this.options.secret, body, webhookId),
      );
      if (answer.status === 202 || answer.status === 200) {
        figures.acknowledged++;
        return true;
      }
      if (answer.status === 0) figures.connectionErrors++;
      else if (answer.status === 503) {
        figures.answered503++;
        if (answer.retryAfter === undefined) figures.missingRetryAfter++;
      } else if (answer.status >= 500) figures.other5xx++;
      else figures.other4xx++;
      if (!terminal || (answer.status >= 400 && answer.status < 500)) return false;
      if (performance.now() > deadline) {
        figures.terminalGivenUp++;
        return false;
      }
      const backoff = Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }

  /** One POST to one ingest: the status, or 0 for a connection error. */
  private post(port: number, body: string, headers: Record<string, string>) {
    return new Promise<{ status: number; retryAfter?: string }>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/webhooks/replicate',
          method: 'POST',
          agent: this.agent,
          headers,
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }),
          );
          res.on('error', () => resolve({ status: 0 }));
        },
      );
      req.setTimeout(10_000, () => req.destroy());
      req.on('error', () => resolve({ status: 0 }));
      req.end(body);
    });
  }
}

function messageId(): string {
  return `msg_${randomBytes(12).toString('hex')}`;
}
