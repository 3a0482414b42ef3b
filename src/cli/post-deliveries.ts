import { type SigningKey, signWebhook } from '../ingest/signature.js';
import type { PlannedDelivery } from './send-plan.js';

/**
 * Posts planned deliveries to an ingest the way Replicate does: signed at the moment of sending
 * (with the module the ingest verifies with), `Content-Type: application/json`, no redirects
 * followed, and a few seconds to answer.
 */

/** How one request ended, from the sender's side. */
export type SendOutcome = 'accepted' | 'duplicate' | 'rejected' | 'failed';

export interface SendResult {
  delivery: PlannedDelivery;
  outcome: SendOutcome;
  /** The HTTP status, when an answer came. */
  httpStatus?: number;
  /** Why it was rejected or failed, one line. */
  reason?: string;
}

export interface PostOptions {
  url: string;
  /** Decoded keys; empty sends unsigned deliveries (for `INLET_INSECURE_SKIP_VERIFY=1`). */
  keys: SigningKey[];
  /** Sequences sent at once. */
  concurrency: number;
  /** Per request. @defaultValue `10000` */
  timeoutMs?: number;
  /** Told of each result as it comes. */
  onResult?: (result: SendResult) => void;
}

/** Sends every sequence, `concurrency` at a time, each in order; resolves with all results. */
export async function postDeliveries(
  sequences: PlannedDelivery[][],
  options: PostOptions,
): Promise<SendResult[]> {
  const results: SendResult[] = [];
  let next = 0;
  const lane = async () => {
    while (next < sequences.length) {
      const sequence = sequences[next++] as PlannedDelivery[];
      for (const delivery of sequence) {
        const result = await postDelivery(delivery, options);
        results.push(result);
        options.onResult?.(result);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, sequences.length) }, lane));
  return results;
}

async function postDelivery(delivery: PlannedDelivery, options: PostOptions): Promise<SendResult> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'inlet-send',
    ...(options.keys.length > 0
      ? signWebhook(delivery.webhookId, timestamp, delivery.body, options.keys)
      : { 'webhook-id': delivery.webhookId, 'webhook-timestamp': String(timestamp) }),
  };
  let response: Response;
  try {
    response = await fetch(options.url, {
      method: 'POST',
      headers,
      body: delivery.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    return { delivery, outcome: 'failed', reason: networkReason(error, options.url) };
  }
  const text = await response.text().catch(() => '');
  return { delivery, httpStatus: response.status, ...classify(response, text) };
}

function classify(response: Response, text: string): Pick<SendResult, 'outcome' | 'reason'> {
  const body = parseJson(text);
  if (response.status >= 300 && response.status < 400) {
    const location = response.headers.get('location') ?? 'elsewhere';
    return {
      outcome: 'rejected',
      reason: `${response.status} redirect to ${location}: Replicate does not follow redirects, use the final URL`,
    };
  }
  if (response.ok) {
    return { outcome: body?.status === 'duplicate' ? 'duplicate' : 'accepted' };
  }
  const error = body?.error as { code?: string; message?: string } | undefined;
  const detail = error?.message
    ? `${error.code ?? 'error'}: ${error.message}`
    : text.slice(0, 120).replace(/\s+/g, ' ') || response.statusText;
  return { outcome: 'rejected', reason: `${response.status} ${detail}` };
}

function networkReason(error: unknown, url: string): string {
  const err = error as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return `no answer from ${url} within the timeout`;
  const code = err.cause?.code ?? err.cause?.message ?? err.message;
  if (code === 'ECONNREFUSED') {
    return `nothing listens at ${url} (ECONNREFUSED): is \`inlet ingest\` or \`inlet dev\` running?`;
  }
  return `cannot reach ${url} (${code})`;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
