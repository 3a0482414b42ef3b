import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { PREDICTION_STATUSES } from '../../src/core/prediction.js';
import { type CliProcess, spawnCli, stopCli } from '../support/cli.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { scrape } from '../support/prometheus.js';
import { freePort, TestRedis } from '../support/redis-server.js';

/** Requests per run; FUZZ_RUNS overrides, FUZZ_SEED replays a run. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CONCURRENCY = 16;
const MAX_BODY = 5 * 1024 * 1024;
const PREFIX = 'fuzz';

interface Hostile {
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

function hostileRequests(secret: string): fc.Arbitrary<Hostile> {
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
        { weight: 1, arbitrary: fc.integer({ min: -100_000, max: 100_000 }) },
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
        Math.abs(r.skewSeconds) < 290 &&
        /^[A-Za-z0-9_.~+=/-]{1,200}$/.test(idHeader) &&
        isValidPrediction(r.body);
      return { method: r.method, path: r.path, headers, body, valid, webhookId: idHeader };
    });
}

function send(agent: Agent, port: number, hostile: Hostile) {
  return new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: hostile.path,
        method: hostile.method,
        agent,
        headers: { ...hostile.headers, 'content-length': String(hostile.body.length) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'],
            body: text,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(hostile.body);
  });
}

describe(`fuzzing the ingest with ${RUNS} hostile requests (seed ${SEED})`, () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let ingest: CliProcess;
  let port: number;
  let url: string;

  before(async () => {
    redis = await TestRedis.start();
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    ingest = spawnCli(['ingest'], {
      env: {
        REDIS_URL: redis.url,
        REPLICATE_WEBHOOK_SECRET: secret,
        PORT: String(port),
        HOST: '127.0.0.1',
        INLET_PREFIX: PREFIX,
        INLET_MAX_BODY_BYTES: String(MAX_BODY),
        LOG_LEVEL: 'warn',
      },
    });
    for (let i = 0; !(await fetch(`${url}/readyz`).catch(() => null))?.ok; i++) {
      assert.ok(i < 200, `the ingest did not start: ${ingest.stderrText()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  after(async () => {
    await stopCli(ingest);
    await redis.destroy();
  });

  /** Sends every request, CONCURRENCY at a time, and checks each answer against the oracle. */
  async function barrage(requests: Hostile[], redisUp: boolean) {
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const accepted = new Set<string>();
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests.length) {
          const hostile = requests[next++] as Hostile;
          const answer = await send(agent, port, hostile);
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          const what = `${hostile.method} ${hostile.path} ${JSON.stringify(hostile.headers)} ${hostile.body.subarray(0, 200)} → ${answer.status} ${answer.body.slice(0, 200)}`;
          if (answer.status === 503) {
            assert.ok(
              !redisUp && hostile.valid,
              `503 with Redis up, or for an invalid request: ${what}`,
            );
            assert.equal(answer.retryAfter, '5', what);
          } else if (hostile.valid) {
            assert.ok([200, 202].includes(answer.status), `valid, not stored: ${what}`);
            if (answer.status === 202 && hostile.webhookId) accepted.add(hostile.webhookId);
          } else if (hostile.method === 'OPTIONS') {
            // The router lists a route's methods (200 with Allow), or knows no such path.
            assert.ok([200, 404].includes(answer.status), `OPTIONS: ${what}`);
          } else {
            assert.ok(answer.status >= 400 && answer.status < 500, `invalid, not 4xx: ${what}`);
            if (hostile.method !== 'HEAD') {
              let code: unknown;
              try {
                code = (JSON.parse(answer.body) as { error?: { code?: unknown } }).error?.code;
              } catch {
                assert.fail(`not a JSON error: ${what}`);
              }
              assert.equal(typeof code, 'string', what);
            }
          }
        }
      }),
    );
    agent.destroy();
    return { accepted, statuses };
  }

  it('never crashes, answers every invalid request 4xx, stores only valid ones, stays small', async () => {
    const requests = fc.sample(hostileRequests(secret), { numRuns: RUNS, seed: SEED });
    const rssBefore = (await scrape(url)).get('process_resident_memory_bytes') ?? Number.NaN;
    const started = performance.now();
    const { accepted, statuses } = await barrage(requests, true);
    const seconds = (performance.now() - started) / 1000;

    // Nothing but the accepted ones is in Redis: no job, no seen mark, for anything invalid.
    const client = new Redis(redis.url);
    const seen = await client.keys(`${PREFIX}:seen:*`);
    const jobs = await client.llen(`${PREFIX}:deliveries:wait`);
    client.disconnect();
    const stored = new Set(seen.map((key) => key.slice(`${PREFIX}:seen:`.length)));
    assert.deepEqual(stored, accepted, 'stored exactly the accepted deliveries');
    assert.equal(jobs, accepted.size);

    assert.equal(ingest.exitCode, null, 'the ingest is still running');
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const rssAfter = (await scrape(url)).get('process_resident_memory_bytes') ?? Number.NaN;
    const growthMb = (rssAfter - rssBefore) / 1e6;
    process.stdout.write(
      `# ${RUNS} requests in ${seconds.toFixed(1)} s (seed ${SEED}): ${accepted.size} stored; statuses ${JSON.stringify(Object.fromEntries(statuses))}; RSS ${Math.round(rssBefore / 1e6)} → ${Math.round(rssAfter / 1e6)} MB\n`,
    );
    assert.ok(growthMb < 150, `RSS grew by ${growthMb.toFixed(0)} MB`);
  });

  it('answers only 503 (with Retry-After) to valid deliveries while Redis is down, and 4xx to the rest', async () => {
    await redis.stop();
    const requests = fc.sample(hostileRequests(secret), { numRuns: 500, seed: SEED + 1 });
    const { accepted, statuses } = await barrage(requests, false);
    assert.equal(accepted.size, 0);
    assert.ok((statuses.get(503) ?? 0) > 0, JSON.stringify(Object.fromEntries(statuses)));
    await redis.start();
  });
});
