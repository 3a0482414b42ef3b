import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../support/cli.js';
import { freePort } from '../support/redis-server.js';

const TOKEN = 'r8_test_token_0123456789';
const KEY = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';

describe('inlet secret against a fake Replicate API', () => {
  let server: Server;
  let base: string;
  const seen: Array<{ path?: string; authorization?: string }> = [];
  let answer: { status: number; body: string } = {
    status: 200,
    body: JSON.stringify({ key: KEY }),
  };

  before(async () => {
    server = createServer((req, res) => {
      seen.push({ path: req.url, authorization: req.headers.authorization });
      if (req.url !== '/v1/webhooks/default/secret' || req.method !== 'GET') {
        res.writeHead(404).end('{"detail":"Not found."}');
      } else if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          '{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}',
        );
      } else {
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => server.close());

  const env = (token: string | undefined) => ({
    REPLICATE_API_TOKEN: token,
    REPLICATE_API_BASE_URL: base,
  });

  test('prints the key alone on stdout, asking with the bearer token', async () => {
    const result = await runCli(['secret'], { env: env(TOKEN) });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${KEY}\n`);
    assert.deepEqual(seen.at(-1), {
      path: '/v1/webhooks/default/secret',
      authorization: `Bearer ${TOKEN}`,
    });
  });

  test('--env prints a line for a .env file', async () => {
    const result = await runCli(['secret', '--env'], { env: env(TOKEN) });
    assert.equal(result.stdout, `REPLICATE_WEBHOOK_SECRET=${KEY}\n`);
  });

  test('a base URL with a trailing slash works the same', async () => {
    const result = await runCli(['secret'], {
      env: { ...env(TOKEN), REPLICATE_API_BASE_URL: `${base}/` },
    });
    assert.equal(result.stdout, `${KEY}\n`);
  });

  test('a bad token: 401 in one clear line, exit 1, token not echoed', async () => {
    const result = await runCli(['secret'], { env: env('r8_wrong') });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      'inlet: Replicate refused the token (401): check REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens)\n',
    );
  });

  test('no token: one line naming the variable, exit 2, no request made', async () => {
    const before = seen.length;
    const result = await runCli(['secret'], { env: env(undefined) });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^inlet: REPLICATE_API_TOKEN is not set: .*\n$/);
    assert.equal(seen.length, before);
  });

  test('a server error or an answer without a key: one line, exit 1', async () => {
    answer = { status: 503, body: '' };
    let result = await runCli(['secret'], { env: env(TOKEN) });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^inlet: Replicate answered 503 .*try again later\n$/);
    answer = { status: 200, body: '{"nope":1}' };
    result = await runCli(['secret'], { env: env(TOKEN) });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^inlet: Replicate's answer .* has no whsec_ key\n$/);
    answer = { status: 200, body: JSON.stringify({ key: KEY }) };
  });

  test('network failure: one line naming the host and what to check', async () => {
    const port = await freePort();
    const result = await runCli(['secret'], {
      env: { ...env(TOKEN), REPLICATE_API_BASE_URL: `http://127.0.0.1:${port}` },
    });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `inlet: cannot reach http://127.0.0.1:${port}: ECONNREFUSED; check the network or REPLICATE_API_BASE_URL\n`,
    );
  });
});
