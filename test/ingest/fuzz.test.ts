import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ioredis } from '../../src/core/commonjs-packages.js';
import { type CliProcess, spawnTestIngest, stopCli } from '../support/cli.js';
import { makeSecret } from '../support/deliveries.js';
import { scrape } from '../support/prometheus.js';
import { TestRedis } from '../support/redis-server.js';
import { type Hostile, hostileRequests } from './hostile-requests.js';

/**
 * Requests per run: 1,000 in `npm test`, 10,000 in `npm run test:chaos`
 * (test/chaos/fuzz.chaos.ts); FUZZ_RUNS overrides, FUZZ_SEED replays a run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CONCURRENCY = 16;
const MAX_BODY = 5 * 1024 * 1024;
const PREFIX = 'fuzz';

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
    ({
      process: ingest,
      port,
      url,
    } = await spawnTestIngest({
      REDIS_URL: redis.url,
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_PREFIX: PREFIX,
      INLET_MAX_BODY_BYTES: String(MAX_BODY),
      LOG_LEVEL: 'warn',
    }));
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
    const client = new ioredis.Redis(redis.url);
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
