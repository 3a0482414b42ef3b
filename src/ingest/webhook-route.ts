import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import typeIs from 'type-is';
import { withDeadline } from '../core/deadline.js';
import { type DeliveryJob, WEBHOOK_ID_PATTERN } from '../core/job.js';
import { type LineValue, type Logger, logLine } from '../core/logger.js';
import { isPredictionStatus, type Prediction } from '../core/prediction.js';
import { type DeliveryEnqueuer, StoreUnavailableError } from './enqueue-delivery.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js';
import { type SigningKey, type VerifyFailure, verifyWebhook } from './signature.js';
import type { StoreHealth } from './store-health.js';
import { WarnLimiter } from './warn-limiter.js';

/** Every way a delivery can end; metrics count these, logs print them. */
export type DeliveryOutcome =
  | 'accepted'
  | 'duplicate'
  | 'invalid_signature'
  | 'stale'
  | 'malformed'
  | 'too_large'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'internal_error';

export interface WebhookRouteOptions {
  enqueuer: Pick<DeliveryEnqueuer, 'enqueueDelivery'>;
  logger: Logger;
  /** Decoded signing keys; empty only when verification is skipped. */
  keys: SigningKey[];
  skipVerify: boolean;
  toleranceSeconds: number;
  maxBodyBytes: number;
  /** Told of every delivery once it is answered (metrics). */
  onDelivery?: (outcome: DeliveryOutcome, seconds: number) => void;
  /** Told of every store's result, for readiness. */
  storeHealth?: StoreHealth;
  /**
   * How long the store of a delivery under 1 MiB may take, from the moment it is issued, before
   * the sender gets 503; each further whole MiB of body adds {@link STORE_MS_PER_MIB}, up to
   * {@link MAX_STORE_DEADLINE_MS}.
   * Measured here and not only by the connection's command timeout, which on a single Redis is set
   * for the largest body the ingest takes (on a cluster, 1 s): this one is the delivery's own, by
   * its size, and it covers the whole store (with `INLET_MIN_REPLICAS`, the `WAIT` after it too).
   * @defaultValue `1000`
   */
  storeTimeoutMs?: number;
}

/**
 * What each whole MiB of a body adds to its store's deadline. Redis copies, runs and appends a
 * large delivery in proportion to its size: with a flat 1 s deadline, a 4 MiB delivery on a busy
 * host was answered 503 although Redis was well.
 */
export const STORE_MS_PER_MIB = 1000;

/** A store's deadline for a delivery under 1 MiB: the README's "503 within about a second". */
export const DEFAULT_STORE_TIMEOUT_MS = 1000;

/**
 * The longest any store waits, whatever its size: under the ingest's default 10 s shutdown drain,
 * so that a store in flight at SIGTERM is still answered.
 */
export const MAX_STORE_DEADLINE_MS = 9000;

/** The deadline of the store of a `bytes`-long delivery (see `storeTimeoutMs`). */
export function storeDeadlineMs(baseMs: number, bytes: number): number {
  const grown = baseMs + Math.floor(bytes / (1024 * 1024)) * STORE_MS_PER_MIB;
  return Math.max(baseMs, Math.min(grown, MAX_STORE_DEADLINE_MS));
}

/** Seconds a sender should wait before retrying after a 503. */
const RETRY_AFTER_SECONDS = 5;

/** What the ingest answers for each rejected signature check. */
const VERIFY_ANSWERS: Record<VerifyFailure, [number, DeliveryOutcome, string]> = {
  missing_headers: [
    400,
    'malformed',
    'webhook-id, webhook-timestamp and webhook-signature are required',
  ],
  invalid_timestamp: [400, 'malformed', 'webhook-timestamp must be Unix seconds'],
  timestamp_too_old: [
    401,
    'stale',
    'webhook-timestamp is older than the allowed tolerance; check the clock',
  ],
  timestamp_in_future: [
    401,
    'stale',
    'webhook-timestamp is ahead of the allowed tolerance; check the clock',
  ],
  no_v1_signature: [401, 'invalid_signature', 'webhook-signature has no v1 signature'],
  invalid_signature: [
    401,
    'invalid_signature',
    'no signature matches; check REPLICATE_WEBHOOK_SECRET',
  ],
};

/** A rejection that ends a delivery with a JSON error. */
class Rejection {
  constructor(
    readonly status: number,
    readonly outcome: DeliveryOutcome,
    readonly code: string,
    readonly message: string,
    /** The `id` the body claims, for the log line only: not verified (see claimedPredictionId). */
    readonly claimedPredictionId?: string,
  ) {}
}

/** What the ingest answers one delivery. */
export interface WebhookAnswer {
  status: number;
  /** Sent as JSON. */
  body: object;
  /** Set on 503: seconds the sender should wait before it retries. */
  retryAfterSeconds?: number;
}

/**
 * Handles one `POST /webhooks/replicate` on Node's own request, whatever framework carries it:
 * the ingest's direct path (app.ts) and its Koa route both call it. Every refusal is an answer;
 * it rejects only on a fault in its own metrics hook or logging.
 */
export type WebhookHandler = (
  req: IncomingMessage,
  query: DeliveryJob['query'],
) => Promise<WebhookAnswer>;

/**
 * `POST /webhooks/replicate`: reads the raw body, verifies, validates and stores one delivery,
 * then answers: 202 accepted, 200 duplicate, or a JSON error. A 2xx always means stored in Redis.
 * Logs one line and tells `onDelivery` of every delivery.
 */
export function webhookHandler(options: WebhookRouteOptions): WebhookHandler {
  const { logger, onDelivery } = options;
  const refusals = new WarnLimiter();
  return async function receiveWebhook(req, query) {
    const started = process.hrtime.bigint();
    const line: Record<string, LineValue> = {};
    let outcome: DeliveryOutcome;
    let answer: WebhookAnswer;
    try {
      const { delivery, predictionJson, bytes } = await readDelivery(req, query, options);
      line.webhookId = delivery.webhookId;
      line.predictionId = delivery.prediction.id;
      line.predictionStatus = delivery.prediction.status;
      outcome = await store(delivery, predictionJson, bytes, options);
      answer = {
        status: outcome === 'accepted' ? 202 : 200,
        body: { status: outcome, id: delivery.webhookId },
      };
    } catch (error) {
      const rejection = toRejection(error);
      outcome = rejection.outcome;
      answer = {
        status: rejection.status,
        body: { error: { code: rejection.code, message: rejection.message } },
      };
      if (rejection.status === 503) answer.retryAfterSeconds = RETRY_AFTER_SECONDS;
      line.reason = rejection.message;
      if (!(error instanceof Rejection)) line.cause = (error as Error).message;
      line.webhookId ??= header(req, 'webhook-id') || undefined;
      if (error instanceof Rejection && error.claimedPredictionId) {
        line.predictionId = error.claimedPredictionId;
        line.unverified = true;
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    onDelivery?.(outcome, seconds);
    // A refused signature is at warn, at most once a second per reason; the rest stay at info.
    const suppressed = answer.status === 401 ? refusals.admit(String(line.reason)) : undefined;
    if (suppressed) line.suppressedSinceLast = suppressed;
    const level =
      outcome === 'internal_error'
        ? 'error'
        : outcome === 'unavailable' || suppressed !== undefined
          ? 'warn'
          : 'info';
    line.outcome = outcome;
    line.httpStatus = answer.status;
    line.ms = Math.round(seconds * 1e4) / 10;
    logLine(logger, level, line, 'delivery');
    return answer;
  };
}

/** The webhook route on Koa, for the requests the ingest's direct path leaves to Koa. */
export function webhookRoute(handle: WebhookHandler) {
  return async function receiveWebhook(ctx: Context): Promise<void> {
    const answer = await handle(ctx.req, ctx.query as DeliveryJob['query']);
    ctx.status = answer.status;
    ctx.body = answer.body;
    if (answer.retryAfterSeconds !== undefined) {
      ctx.set('Retry-After', String(answer.retryAfterSeconds));
    }
  };
}

/** A request header as one string; '' when absent (as Koa's `ctx.get`). */
function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : (value?.[0] ?? '');
}

/**
 * The delivery, its prediction's JSON text as sent (stored as it is, see enqueue-delivery) and
 * the body's length in bytes.
 */
async function readDelivery(
  req: IncomingMessage,
  query: DeliveryJob['query'],
  options: WebhookRouteOptions,
): Promise<{ delivery: DeliveryJob; predictionJson: string; bytes: number }> {
  const receivedAt = Date.now();
  const declared = Number(header(req, 'content-length') || 0);
  if (declared > options.maxBodyBytes) throw tooLarge(options.maxBodyBytes);
  if (!typeIs(req, ['application/json', '+json'])) {
    throw new Rejection(
      415,
      'unsupported_media_type',
      'unsupported_media_type',
      'send Content-Type: application/json',
    );
  }
  const raw = await readBody(req, options.maxBodyBytes);

  let webhookId = header(req, 'webhook-id');
  let timestamp = Number(header(req, 'webhook-timestamp')) || 0;
  if (!options.skipVerify) {
    const verified = verifyWebhook(req.headers, raw, options.keys, {
      toleranceSeconds: options.toleranceSeconds,
      now: receivedAt,
    });
    if (!verified.ok) {
      const [status, outcome, message] = VERIFY_ANSWERS[verified.reason];
      // Nothing of an unverified body is parsed: it may cost no more than reading and HMAC-ing.
      throw new Rejection(status, outcome, verified.reason, message, claimedPredictionId(raw));
    }
    webhookId = verified.webhookId;
    timestamp = verified.timestamp;
  } else if (!webhookId) {
    webhookId = `unsigned_${randomUUID()}`;
  }
  if (!WEBHOOK_ID_PATTERN.test(webhookId)) {
    throw malformed('invalid_webhook_id', 'webhook-id must be 1-200 letters, digits or _.~+=/-');
  }
  const text = raw.toString('utf8');
  const delivery: DeliveryJob = {
    webhookId,
    timestamp,
    receivedAt,
    query,
    prediction: parsePrediction(raw, text),
  };
  return { delivery, predictionJson: text, bytes: raw.length };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await getRawBody(req, { limit, length: header(req, 'content-length') || undefined });
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') throw tooLarge(limit);
    throw malformed('unreadable_body', 'the request body could not be read completely');
  }
}

/**
 * Stores the delivery, answering within its deadline ({@link storeDeadlineMs}) of the call
 * whatever the connection is doing, and tells {@link StoreHealth} how it went.
 */
async function store(
  delivery: DeliveryJob,
  predictionJson: string,
  bytes: number,
  options: WebhookRouteOptions,
) {
  const timeoutMs = storeDeadlineMs(options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS, bytes);
  try {
    const outcome = await withDeadline(
      options.enqueuer.enqueueDelivery(delivery, predictionJson),
      timeoutMs,
      () => new StoreUnavailableError(`Redis did not confirm the write in ${timeoutMs} ms`),
    );
    options.storeHealth?.succeeded();
    return outcome;
  } catch (error) {
    if (error instanceof StoreUnavailableError) options.storeHealth?.failed(error.message);
    throw error;
  }
}

function parsePrediction(raw: Buffer, text: string): Prediction {
  if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) {
    throw malformed(
      'too_deeply_nested',
      `the body nests arrays and objects more than ${MAX_JSON_DEPTH} deep`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw malformed('invalid_json', 'the body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw malformed('invalid_prediction', 'the body must be a prediction object');
  }
  const { id, status } = body as Record<string, unknown>;
  if (typeof id !== 'string' || id.length === 0 || id.length > 200) {
    throw malformed('invalid_prediction', 'the prediction has no id');
  }
  if (!isPredictionStatus(status)) {
    throw malformed('invalid_prediction', 'the prediction has no known status');
  }
  return body as Prediction;
}

/** How much of a rejected body is searched for the prediction id it claims. */
const CLAIMED_ID_SCAN_BYTES = 4096;
const CLAIMED_ID = /"id"\s{0,16}:\s{0,16}"([A-Za-z0-9_-]{1,200})"/;

/**
 * The prediction id a rejected body claims, so that an operator can find a delivery that failed
 * its signature check by prediction too. Never trusted for anything but the log line, and found
 * without parsing: a bounded pattern over the first 4 KiB (Replicate sends `id` first), so that a
 * flood of forged bodies costs no more than reading them.
 */
function claimedPredictionId(raw: Buffer): string | undefined {
  const head = raw.subarray(0, CLAIMED_ID_SCAN_BYTES).toString('latin1');
  return CLAIMED_ID.exec(head)?.[1];
}

function malformed(code: string, message: string): Rejection {
  return new Rejection(400, 'malformed', code, message);
}

function tooLarge(limit: number): Rejection {
  return new Rejection(
    413,
    'too_large',
    'payload_too_large',
    `the body is over ${limit} bytes (INLET_MAX_BODY_BYTES)`,
  );
}

function toRejection(error: unknown): Rejection {
  if (error instanceof Rejection) return error;
  if (error instanceof StoreUnavailableError) {
    return new Rejection(
      503,
      'unavailable',
      'unavailable',
      'the queue cannot take deliveries right now; retry',
    );
  }
  // Anything else is no Redis outage but a fault in the ingest (e.g. BullMQ could not encode the
  // job): not stored, answered 500 so that it is never counted as unavailability, and logged at
  // error level with its cause. Never a stack trace to the client.
  return new Rejection(
    500,
    'internal_error',
    'internal',
    'the delivery could not be processed; it was not stored',
  );
}
