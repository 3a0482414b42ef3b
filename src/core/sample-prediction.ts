import { randomBytes, randomInt } from 'node:crypto';
import {
  isTerminal,
  type Prediction,
  type PredictionStatus,
  TERMINAL_STATUSES,
} from './prediction.js';

/**
 * Realistic Replicate prediction objects for `inlet send` and `inlet-webhooks/testing`: every field a real delivery carries,
 * in the shape `GET /v1/predictions/{id}` returns, so that a processor tested with them meets
 * no surprise from the real thing.
 */

/** Replicate's ids are 26 characters of lower-case base32 (Crockford's alphabet). */
const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const WEBHOOK_ID_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const MODEL = 'black-forest-labs/flux-schnell';
const VERSION = '5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637';

/** The terminal statuses in the order `--status all` hands them out across predictions. */
export const TERMINAL_ROTATION = [...TERMINAL_STATUSES];

/** A new prediction id, like `e0hd0y5xzhrmc0cmyvmrq9xcy4`. */
export function newPredictionId(): string {
  return randomText(ID_ALPHABET, 26);
}

/** A new `webhook-id`, like Replicate's `msg_2uqDHHK0ExvOXSYZEnxmqPMHYQE`. */
export function newWebhookId(): string {
  return `msg_${randomText(WEBHOOK_ID_ALPHABET, 27)}`;
}

export interface SampleOptions {
  /**
   * The prediction's id; one id across deliveries makes them one prediction's life.
   * @defaultValue a new random id
   */
  id?: string;
  status: PredictionStatus;
  /** The model's input. @defaultValue a flux-schnell prompt */
  input?: Record<string, unknown>;
  /**
   * The model's output: put your own model's shape here. @defaultValue for `succeeded`, a list of
   * one image URL (flux-schnell's shape); else `null`
   */
  output?: unknown;
  /** The webhook URL the prediction was created with, as Replicate echoes it. */
  webhook?: string;
  /** When the prediction was created. @defaultValue a few seconds ago */
  createdAt?: Date;
}

/** One prediction object as Replicate would deliver it in `status`. */
export function samplePrediction(options: SampleOptions): Prediction {
  const { status } = options;
  const id = options.id ?? newPredictionId();
  const created = options.createdAt ?? new Date(Date.now() - 4_000);
  const started = new Date(created.getTime() + 800);
  const completed = new Date(created.getTime() + 3_200);
  const ran = status !== 'starting' && status !== 'aborted';
  const done = isTerminal(status);
  const seed = randomInt(1, 1_000_000);
  return {
    id,
    model: MODEL,
    version: VERSION,
    input: options.input ?? {
      prompt: 'an astronaut riding a horse on the moon',
      num_outputs: 1,
      seed,
    },
    output: 'output' in options ? options.output : outputFor(status, id),
    logs: ran ? logsFor(status, seed) : '',
    error: errorFor(status),
    status,
    created_at: created.toISOString(),
    started_at: ran ? started.toISOString() : null,
    completed_at: done ? completed.toISOString() : null,
    urls: {
      cancel: `https://api.replicate.com/v1/predictions/${id}/cancel`,
      get: `https://api.replicate.com/v1/predictions/${id}`,
      stream: `https://stream.replicate.com/v1/files/${id}`,
      web: `https://replicate.com/p/${id}`,
    },
    metrics: done && ran ? { image_count: status === 'succeeded' ? 1 : 0, predict_time: 2.4 } : {},
    data_removed: false,
    source: 'api',
    ...(options.webhook ? { webhook: options.webhook } : {}),
    webhook_events_filter: ['start', 'output', 'logs', 'completed'],
  };
}

function outputFor(status: PredictionStatus, id: string): unknown {
  if (status === 'succeeded') return [`https://replicate.delivery/xezq/${id}/out-0.webp`];
  return null;
}

function logsFor(status: PredictionStatus, seed: number): string {
  const lines = [`Using seed: ${seed}`, 'Running prediction'];
  if (status === 'processing') return `${lines.join('\n')}\n 50%|█████     | 2/4 [00:00<00:00]`;
  lines.push('100%|██████████| 4/4 [00:00<00:00,  9.87it/s]');
  if (status === 'failed') lines.push('Traceback (most recent call last): …');
  return lines.join('\n');
}

function errorFor(status: PredictionStatus): string | null {
  if (status === 'failed') return 'CUDA error: out of memory';
  if (status === 'aborted') return 'Prediction was aborted before it started';
  return null;
}

function randomText(alphabet: string, length: number): string {
  const bytes = randomBytes(length);
  let text = '';
  for (const byte of bytes) text += alphabet[byte % alphabet.length];
  return text;
}
