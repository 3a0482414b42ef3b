/**
 * The fuzzing test's generator (fast-check) of hostile requests to the ingest, each with the
 * oracle's verdict: whether a correct ingest must store it.
 */
import fc from 'fast-check';
import { PREDICTION_STATUSES } from '../../src/core/prediction.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';

export interface Hostile {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** What a correct ingest must do with it: store it (2xx), or refuse it (4xx). */
  valid: boolean;
  webhookId: string | undefined;
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/x+json'];
const OTHER_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', ''];

const nested = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('[', '{"a":'))
  .map(([depth, open]) => `${open.repeat(depth)}1${(open === '[' ? ']' : '}').repeat(depth)}`);

/** Bodies of every shape: valid predictions (with hostile content), JSON, nesting, junk. */
const bodyText = fc.oneof(
  { weight: 4, arbitrary: predictionBody() },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  { weight: 1, arbitrary: nested },
  {
    weight: 1,
    arbitrary: fc
      .tuple(predictionBody(), nested)
      .map(([body, deep]) => `${body.slice(0, -1)},"output":${deep}}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '{}', '"x"', '{"id":1}') },
);

function predictionBody(): fc.Arbitrary<string> {
  return fc
    .record({
      id: fc.oneof(
        fc.stringMatching(/^[a-z0-9]{1,40}$/),
        fc.string({ maxLength: 250 }),
        fc.constant(''),
      ),
      status: fc.oneof(fc.constantFrom(...PREDICTION_STATUSES), fc.string({ maxLength: 12 })),
      extra: fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 4 }), {
        maxKeys: 4,
      }),
      logs: fc.oneof(fc.constant(null), fc.string({ unit: 'grapheme', maxLength: 2000 })),
    })
    .map(({ id, status, extra, logs }) =>
      JSON.stringify({ ...extra, ...samplePrediction('succeeded', id), status, logs }),
    );
}

/** What the ingest must accept: a prediction object with an id and a known status, not too deep. */
function isValidPrediction(text: string): boolean {
  if (/[[{]/.test(text) && depthOf(text) > 128) return false;
  try {
    const value = JSON.parse(text) as Record<string, unknown> | null;
    return (
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof value.id === 'string' &&
      value.id.length > 0 &&
      value.id.length <= 200 &&
      (PREDICTION_STATUSES as readonly unknown[]).includes(value.status)
    );
  } catch {
    return false;
  }
}

function depthOf(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if (c === ']' || c === '}') depth--;
  }
  return max;
}

export function hostileRequests(secret: string): fc.Arbitrary<Hostile> {
  return fc
    .record({
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant('POST') },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
        { weight: 1, arbitrary: fc.constantFrom('PROPFIND', 'PURGE', 'HEAD', 'TRACE') },
      ),
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constant('/webhooks/replicate') },
        {
          weight: 1,
          arbitrary: fc
            .webQueryParameters()
            .map((query) => `/webhooks/replicate?${encodeURI(query)}`),
        },
        { weight: 1, arbitrary: fc.webPath().map((path) => encodeURI(path || '/x')) },
      ),
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...JSON_TYPES) },
        { weight: 1, arbitrary: fc.constantFrom(...OTHER_TYPES) },
      ),
      id: fc.oneof(
        { weight: 8, arbitrary: fc.uuid().map((uuid) => `msg_${uuid.replaceAll('-', '')}`) },
        { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 250 }) },
        { weight: 1, arbitrary: fc.stringMatching(/^[0-9]{1,12}$/) },
      ),
      skewSeconds: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: -60, max: 60 }) },
        // Well outside the 300 s tolerance, however long the run takes to send them.
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.integer({ min: 400, max: 100_000 }), fc.boolean())
            .map(([seconds, past]) => (past ? -seconds : seconds)),
        },
      ),
      signature: fc.oneof(
        { weight: 6, arbitrary: fc.constant('valid') },
        { weight: 1, arbitrary: fc.constant('other secret') },
        { weight: 1, arbitrary: fc.base64String().map((b) => `v1,${b}`) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
        { weight: 1, arbitrary: fc.constant('absent') },
      ),
      body: bodyText,
      extraHeaders: fc.dictionary(
        fc.stringMatching(/^x-[a-z-]{1,20}$/),
        fc.string({ unit: 'binary-ascii', maxLength: 100 }).map((v) => v.replace(/[^ -~]/g, '')),
        { maxKeys: 3 },
      ),
    })
    .map((r) => {
      const body = Buffer.from(r.body);
      const at = new Date(Date.now() + r.skewSeconds * 1000);
      const headers: Record<string, string> = { ...r.extraHeaders };
      if (r.contentType) headers['content-type'] = r.contentType;
      let signedOk = false;
      const idHeader = r.id.replace(/[^ -~]/g, '').trim();
      if (r.signature !== 'absent' && idHeader) {
        const key = r.signature === 'other secret' ? makeSecret() : secret;
        const signed = signedHeaders(key, r.body, idHeader, at);
        headers['webhook-id'] = signed['webhook-id'];
        headers['webhook-timestamp'] = signed['webhook-timestamp'];
        headers['webhook-signature'] = ['valid', 'other secret'].includes(r.signature)
          ? signed['webhook-signature']
          : r.signature.replace(/[^ -~]/g, '');
        signedOk = r.signature === 'valid' && Buffer.from(r.body).equals(body);
      }
      const valid =
        r.method === 'POST' &&
        r.path.startsWith('/webhooks/replicate') &&
        JSON_TYPES.includes(r.contentType) &&
        signedOk &&
        Math.abs(r.skewSeconds) <= 60 &&
        /^[A-Za-z0-9_.~+=/-]{1,200}$/.test(idHeader) &&
        isValidPrediction(r.body);
      return { method: r.method, path: r.path, headers, body, valid, webhookId: idHeader };
    });
}
