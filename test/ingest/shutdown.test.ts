import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';
import { CLI } from '../support/paths.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

const ENTRY = CLI;

describe('inlet ingest on SIGTERM', () => {
  const secret = makeSecret();
  let redis: TestRedis;
  let child: ChildProcess;
  let port: number;
  let output = '';

  before(async () => {
    redis = await TestRedis.start();
    port = await freePort();
    child = spawn(process.execPath, [ENTRY, 'ingest'], {
      env: {
        ...process.env,
        REDIS_URL: redis.url,
        REPLICATE_WEBHOOK_SECRET: secret,
        PORT: String(port),
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    await waitFor('ingest listening', () => output.includes('ingest listening'));
  });

  after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await redis.destroy();
  });

  it('answers every request in flight, refuses new ones, closes Redis and exits 0', async () => {
    // Ten deliveries whose bodies are still arriving when SIGTERM comes.
    const inFlight = Array.from({ length: 10 }, () => {
      const body = JSON.stringify(samplePrediction('succeeded'));
      const headers = {
        ...signedHeaders(secret, body),
        'content-length': String(Buffer.byteLength(body)),
        // The server answers `100 Continue` once it has read the request's head: from then on
        // the request is in flight, with no need to guess how long that takes.
        expect: '100-continue',
      };
      let finish = () => {};
      let reached: () => void = () => {};
      const inServer = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path: '/webhooks/replicate', method: 'POST', headers },
          (res) => {
            let text = '';
            res.on('data', (chunk) => {
              text += chunk;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.on('continue', () => {
          req.write(body.slice(0, 100));
          reached();
        });
        req.flushHeaders();
        finish = () => req.end(body.slice(100));
      });
      return { answered, inServer, finish: () => finish() };
    });
    await Promise.all(inFlight.map((request) => request.inServer));

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await waitFor('the listener to close', () =>
      fetch(`http://127.0.0.1:${port}/healthz`).then(
        () => false,
        () => true,
      ),
    );
    assert.equal(child.exitCode, null, 'it waits for the requests in flight');

    for (const request of inFlight) request.finish();
    const answers = await Promise.all(inFlight.map((request) => request.answered));
    for (const answer of answers) {
      assert.equal(answer.status, 202, answer.body);
    }
    const [code] = await exited;
    assert.equal(code, 0);
    assert.match(output, /ingest stopped/);

    const client = redis.client();
    assert.equal(await client.llen('inlet:deliveries:wait'), 10);
    client.disconnect();
  });
});
