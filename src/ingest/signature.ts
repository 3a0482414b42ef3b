import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks (scheme `v1`, HMAC-SHA256), as Replicate signs its deliveries.
 * Written on `node:crypto`: the reference npm library is pure JavaScript and several times slower
 * on the ingest's hot path. Conformance with it is tested in test/ingest/signature.test.ts.
 * The ingest verifies and `inlet send` signs with this one module.
 */

/** Why a delivery was not verified; each maps to an HTTP answer in the ingest. */
export type VerifyFailure =
  | 'missing_headers'
  | 'invalid_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_in_future'
  | 'no_v1_signature'
  | 'invalid_signature';

export type VerifyResult =
  | { ok: true; webhookId: string; timestamp: number }
  | { ok: false; reason: VerifyFailure };

export interface VerifyOptions {
  /** Current time in milliseconds. @defaultValue `Date.now()` */
  now?: number;
  /** Allowed skew of `webhook-timestamp` in either direction. @defaultValue `300` */
  toleranceSeconds?: number;
}

/** A decoded signing key: what a `whsec_…` secret stands for. */
export type SigningKey = Buffer;

/** Headers as Node gives them, or a plain record; names are matched in lower case. */
export type HeaderBag = Record<string, string | string[] | undefined> | Headers;

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const TIMESTAMP = /^[0-9]{1,15}$/;

/**
 * Decodes a `whsec_<base64>` secret into its key; the base64 part alone is accepted too, as the
 * reference `standardwebhooks` library accepts it. Throws an Error with a one-line message for
 * anything else, so that a mistyped secret stops the ingest at start, not at the first delivery.
 */
export function decodeSecret(secret: string): SigningKey {
  const body = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!BASE64.test(body)) {
    throw new Error(
      'a webhook secret must look like whsec_<base64> (as `inlet secret` prints it), or be the base64 part alone',
    );
  }
  const key = Buffer.from(body, 'base64');
  if (key.length < 16) throw new Error('a webhook secret must decode to at least 16 bytes');
  return key;
}

/**
 * Verifies a Standard Webhooks delivery: the `v1` HMAC of `id.timestamp.body` under any of the
 * secrets matches any `v1` entry of `webhook-signature` (constant-time), and the timestamp is
 * within the tolerance, past or future. Other versions (`v1a`, `v2`) are skipped.
 *
 * @param rawBody - the body exactly as received; parsing and re-serialising breaks the signature.
 * @param secrets - `whsec_…` strings or keys already decoded with {@link decodeSecret}.
 */
export function verifyWebhook(
  headers: HeaderBag,
  rawBody: Buffer | string,
  secrets: ReadonlyArray<string | SigningKey>,
  options: VerifyOptions = {},
): VerifyResult {
  const webhookId = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatureList = header(headers, 'webhook-signature');
  if (!webhookId || !timestampText || !signatureList)
    return { ok: false, reason: 'missing_headers' };
  if (!TIMESTAMP.test(timestampText)) return { ok: false, reason: 'invalid_timestamp' };

  const timestamp = Number(timestampText);
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (timestamp < nowSeconds - tolerance) return { ok: false, reason: 'timestamp_too_old' };
  if (timestamp > nowSeconds + tolerance) return { ok: false, reason: 'timestamp_in_future' };

  const candidates = v1Signatures(signatureList);
  if (candidates.length === 0) return { ok: false, reason: 'no_v1_signature' };

  for (const secret of secrets) {
    const key = typeof secret === 'string' ? decodeSecret(secret) : secret;
    const expected = digest(key, webhookId, timestampText, rawBody);
    for (const candidate of candidates) {
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) {
        return { ok: true, webhookId, timestamp };
      }
    }
  }
  return { ok: false, reason: 'invalid_signature' };
}

/**
 * Signs a delivery the way Replicate does and returns the three `webhook-*` headers.
 * Used by `inlet send` and the tests; a second secret yields a second signature (rotation).
 */
export function signWebhook(
  webhookId: string,
  timestampSeconds: number,
  rawBody: Buffer | string,
  secrets: ReadonlyArray<string | SigningKey>,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const timestampText = String(Math.floor(timestampSeconds));
  const signatures = secrets.map((secret) => {
    const key = typeof secret === 'string' ? decodeSecret(secret) : secret;
    return `v1,${digest(key, webhookId, timestampText, rawBody).toString('base64')}`;
  });
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': timestampText,
    'webhook-signature': signatures.join(' '),
  };
}

function digest(key: SigningKey, id: string, timestamp: string, body: Buffer | string): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
}

/** The decoded `v1` entries of a `webhook-signature` list; malformed entries are skipped. */
function v1Signatures(list: string): Buffer[] {
  const found: Buffer[] = [];
  for (const entry of list.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue;
    const value = entry.slice(comma + 1);
    if (value.length > 0 && BASE64.test(value)) found.push(Buffer.from(value, 'base64'));
  }
  return found;
}

function header(headers: HeaderBag, name: string): string | undefined {
  let value: string | string[] | undefined;
  if (headers instanceof Headers) {
    value = headers.get(name) ?? undefined;
  } else {
    value = headers[name];
    if (value === undefined) {
      // Node lower-cases header names; a caller's plain record may not.
      const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
      value = key === undefined ? undefined : headers[key];
    }
  }
  const text = Array.isArray(value) ? value[0] : value;
  return text?.trim() || undefined;
}
