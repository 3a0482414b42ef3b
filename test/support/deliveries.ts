import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Prediction, PredictionStatus } from '../../src/core/prediction.js';

/** A fresh `whsec_` secret, as Replicate issues them. */
export function makeSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** A realistic prediction object in the given state. */
export function samplePrediction(
  status: PredictionStatus = 'succeeded',
  id = randomId(),
): Prediction {
  const done = ['succeeded', 'failed', 'canceled', 'aborted'].includes(status);
  return {
    id,
    model: 'black-forest-labs/flux-schnell',
    version: 'bf2f2e683d03a9549f484a37a0df1581514b28f21d2ea3f1fbe5d6f1f6a5b5f4',
    input: { prompt: 'an astronaut riding a horse', num_outputs: 1 },
    output: status === 'succeeded' ? [`https://replicate.delivery/xezq/${id}/out-0.webp`] : null,
    logs: 'Using seed: 1234\n100%|██████████| 4/4 [00:00<00:00, 9.10it/s]',
    error: status === 'failed' ? 'CUDA out of memory' : null,
    status,
    created_at: '2026-11-27T07:00:00.000Z',
    started_at: '2026-11-27T07:00:01.000Z',
    completed_at: done ? '2026-11-27T07:00:03.000Z' : null,
    urls: {
      get: `https://api.replicate.com/v1/predictions/${id}`,
      cancel: `https://api.replicate.com/v1/predictions/${id}/cancel`,
      stream: `https://stream.replicate.com/v1/files/${id}`,
    },
    metrics: done ? { predict_time: 1.9, total_time: 2.4 } : {},
    data_removed: false,
    source: 'api',
  };
}

export function randomId(): string {
  return randomBytes(13).toString('hex').slice(0, 26);
}

export function webhookId(): string {
  return `msg_${randomUUID().replaceAll('-', '')}`;
}

export type SignedHeaders = Record<
  'content-type' | 'webhook-id' | 'webhook-timestamp' | 'webhook-signature',
  string
>;

/**
 * Signs a body as the Standard Webhooks spec says, as an independent sender would: written here
 * from the spec, not with inlet's own signer. Node's HMAC, not the reference library's pure-JS
 * SHA-256, which cost about 0.2 ms a signature (an eighth of the ingest tests' CPU); a test in
 * test/ingest/signature.test.ts checks that both sign alike.
 */
export function signedHeaders(
  secret: string,
  body: string,
  id = webhookId(),
  at = new Date(),
): SignedHeaders {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': `v1,${mac}`,
  };
}

/** Posts `prediction` to a webhook URL, signed under `id`, as Replicate would. */
export async function postSigned(
  url: string,
  secret: string,
  prediction: Prediction,
  id = webhookId(),
): Promise<{ status: number; retryAfter: string | null; id: string }> {
  const body = JSON.stringify(prediction);
  const answer = await fetch(url, {
    method: 'POST',
    headers: signedHeaders(secret, body, id),
    body,
  });
  await answer.arrayBuffer();
  return { status: answer.status, retryAfter: answer.headers.get('retry-after'), id };
}
