import { randomBytes } from 'node:crypto';
import { signWebhook } from '../src/ingest/signature.js';

/** One ready-to-send delivery: what Replicate would POST, already signed. */
export interface SignedDelivery {
  webhookId: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** A fresh `whsec_` secret, as Replicate issues them. */
export function benchSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** Ids are unique per run without paying for random bytes per delivery. */
const RUN = randomBytes(6).toString('hex');
let sequence = 0;

function nextId(): string {
  sequence += 1;
  return `${RUN}${sequence.toString(36).padStart(14, '0')}`;
}

/**
 * A realistic terminal prediction, about 800 bytes of JSON once serialised: the fields, lengths
 * and nesting Replicate sends for an image model. Every call gets a new prediction id.
 */
export function predictionBody(): string {
  const id = nextId();
  return JSON.stringify({
    id,
    model: 'black-forest-labs/flux-schnell',
    version: 'bf2f2e683d03a9549f484a37a0df1581514b28f21d2ea3f1fbe5d6f1f6a5b5f4',
    input: {
      prompt: 'an astronaut riding a horse on the moon, golden hour',
      num_outputs: 1,
      seed: sequence,
    },
    output: [`https://replicate.delivery/xezq/${id}/out-0.webp`],
    logs: 'Using seed: 1234\n100%|##########| 4/4 [00:00<00:00, 9.10it/s]\n',
    error: null,
    status: 'succeeded',
    created_at: '2026-11-27T07:00:00.118Z',
    started_at: '2026-11-27T07:00:01.004Z',
    completed_at: '2026-11-27T07:00:02.950Z',
    urls: {
      get: `https://api.replicate.com/v1/predictions/${id}`,
      cancel: `https://api.replicate.com/v1/predictions/${id}/cancel`,
    },
    metrics: { predict_time: 1.946, total_time: 2.832 },
    data_removed: false,
    source: 'api',
    webhook_events_filter: ['completed'],
  });
}

/** Signs one new delivery with a unique `webhook-id` under `secret`, timestamped now. */
export function signedDelivery(secret: string): SignedDelivery {
  const webhookId = `msg_${nextId()}`;
  const body = Buffer.from(predictionBody());
  const signed = signWebhook(webhookId, Date.now() / 1000, body, [secret]);
  return { webhookId, headers: { 'content-type': 'application/json', ...signed }, body };
}

/**
 * Deliveries signed ahead of a round, so that the load generator spends its CPU time sending,
 * not signing (the generator shares the machine with the server under test). When the pool runs
 * dry, deliveries are signed on the spot and counted in {@link signedLate}.
 */
export class DeliveryPool {
  private items: SignedDelivery[] = [];
  private next = 0;
  /** Deliveries signed during a round because the pool ran dry. */
  signedLate = 0;

  constructor(private readonly secret: string) {}

  /** Replaces the pool with `size` freshly signed deliveries. */
  refill(size: number): void {
    this.items = new Array(size);
    for (let i = 0; i < size; i++) this.items[i] = signedDelivery(this.secret);
    this.next = 0;
    this.signedLate = 0;
  }

  /** The next unused delivery; never the same `webhook-id` twice. */
  take(): SignedDelivery {
    const item = this.items[this.next];
    if (item) {
      this.items[this.next] = undefined as unknown as SignedDelivery;
      this.next += 1;
      return item;
    }
    this.signedLate += 1;
    return signedDelivery(this.secret);
  }
}
