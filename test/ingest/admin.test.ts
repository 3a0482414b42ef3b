import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QUEUE_NAME } from '../../src/core/job.js';
import { AdminCredentials, SESSION_SECONDS } from '../../src/ingest/admin-session.js';
import { DashboardStack, DEAD_LETTER_REASON } from '../support/dashboard-stack.js';

const API = `/admin/queues/api/queues`;

/** One request against the stack's ingest; redirects are returned, not followed. */
async function request(
  stack: DashboardStack,
  path: string,
  init: RequestInit & { headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${stack.ingest.url}${path}`, { redirect: 'manual', ...init });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

describe('admin dashboard, INLET_ADMIN_TOKEN unset', () => {
  let stack: DashboardStack;
  before(async () => {
    stack = await DashboardStack.start({ adminToken: false });
  });
  after(() => stack?.close());

  it('answers 404 on every admin path: off, never open', async () => {
    for (const path of ['/admin', '/admin/queues', '/admin/queues/', API, '/admin/login']) {
      const answer = await request(stack, path, { headers: { accept: 'text/html' } });
      assert.equal(answer.status, 404, path);
    }
    const login = await request(stack, '/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${stack.token}`,
    });
    assert.equal(login.status, 404);
    assert.equal(login.headers.get('set-cookie'), null);
  });
});

describe('admin dashboard behind INLET_ADMIN_TOKEN', () => {
  let stack: DashboardStack;
  let failed: { webhookId: string; predictionId: string };
  before(async () => {
    stack = await DashboardStack.start();
    failed = await stack.deadLetterOne();
  });
  after(() => stack?.close());

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('refuses requests without the token', async () => {
    const page = await request(stack, '/admin/queues', { headers: { accept: 'text/html' } });
    assert.equal(page.status, 303, 'a browser is sent to the login form');
    assert.equal(page.headers.get('location'), '/admin/login?next=%2Fadmin%2Fqueues');
    assert.doesNotMatch(page.text, /__UI_CONFIG__/);

    const api = await request(stack, API, { headers: { accept: 'application/json' } });
    assert.equal(api.status, 401);
    assert.match(api.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal(JSON.parse(api.text).error.code, 'unauthorized');

    for (const wrong of ['nope', `${stack.token}x`, stack.token.slice(0, -1)]) {
      const answer = await request(stack, API, { headers: bearer(wrong) });
      assert.equal(answer.status, 401, `token ${wrong}`);
    }
    const statics = await request(stack, '/admin/queues/static/favicon-32x32.png');
    assert.equal(statics.status, 401);

    // Spellings of the path that must not reach bull-board around the gate.
    for (const path of [
      '//admin/queues/api/queues',
      '/admin/%71ueues/api/queues',
      '/ADMIN/queues/api/queues',
      '/admin/queues/../queues/api/queues',
      '/admin/queues%2Fapi%2Fqueues',
    ]) {
      const answer = await request(stack, path);
      assert.ok(answer.status === 401 || answer.status === 404, `${path}: ${answer.status}`);
      assert.doesNotMatch(answer.text, /"queues"/, path);
    }
  });

  it("protects bull-board's own API: no retry without the token", async () => {
    const path = `${API}/${QUEUE_NAME}/${failed.webhookId}/retry`;
    const answer = await request(stack, path, { method: 'PUT' });
    assert.equal(answer.status, 401);
    assert.equal(await (await stack.ingest.queue.getJob(failed.webhookId))?.getState(), 'failed');
  });

  it('serves the dashboard and its API with Authorization: Bearer', async () => {
    const page = await request(stack, '/admin/queues', { headers: bearer(stack.token) });
    assert.equal(page.status, 200);
    assert.match(page.text, /<base href="\/admin\/queues\/"/);
    assert.match(page.text, /__UI_CONFIG__/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');

    const api = await request(stack, `${API}?activeQueue=${QUEUE_NAME}&status=failed`, {
      headers: bearer(stack.token),
    });
    assert.equal(api.status, 200);
    const body = JSON.parse(api.text) as {
      queues: Array<{
        name: string;
        counts: Record<string, number>;
        jobs: Array<Record<string, unknown>>;
      }>;
    };
    const queue = body.queues.find((q) => q.name === QUEUE_NAME);
    assert.ok(queue, 'the deliveries queue is listed');
    assert.equal(queue.counts.failed, 1);
    const job = queue.jobs.find((j) => j.id === failed.webhookId);
    assert.ok(job, 'the dead-lettered delivery is listed');
    assert.match(String(job.failedReason), new RegExp(DEAD_LETTER_REASON));
  });

  it('logs a browser in with an HttpOnly, SameSite=Strict cookie that never holds the token', async () => {
    const form = {
      'content-type': 'application/x-www-form-urlencoded',
      'sec-fetch-site': 'same-origin',
    };
    const wrong = await request(stack, '/admin/login', {
      method: 'POST',
      headers: form,
      body: 'token=not-the-token&next=%2Fadmin%2Fqueues%2F',
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
    assert.match(wrong.text, /not the admin token/);

    const login = await request(stack, '/admin/login', {
      method: 'POST',
      headers: form,
      body: new URLSearchParams({
        token: stack.token,
        next: '/admin/queues/queue/deliveries',
      }).toString(),
    });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/admin/queues/queue/deliveries');
    const setCookie = login.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^inlet_admin=v1\.[0-9]+\.[A-Za-z0-9_-]{43}; /);
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Strict/);
    assert.match(setCookie, /; Path=\/admin/);
    assert.match(setCookie, new RegExp(`; Max-Age=${SESSION_SECONDS}`));
    assert.ok(!setCookie.includes(stack.token));
    const cookie = setCookie.split(';')[0] as string;

    const api = await request(stack, API, { headers: { cookie } });
    assert.equal(api.status, 200);

    const tampered = `${cookie.slice(0, -2)}${cookie.endsWith('AA') ? 'BB' : 'AA'}`;
    assert.equal((await request(stack, API, { headers: { cookie: tampered } })).status, 401);

    // Changes carried by a cookie must come from the dashboard's own origin.
    const retryPath = `${API}/${QUEUE_NAME}/${failed.webhookId}/retry`;
    const crossSite = await request(stack, retryPath, {
      method: 'PUT',
      headers: { cookie, 'sec-fetch-site': 'same-site' },
    });
    assert.equal(crossSite.status, 403);
    const otherOrigin = await request(stack, retryPath, {
      method: 'PUT',
      headers: { cookie, origin: 'http://evil.example' },
    });
    assert.equal(otherOrigin.status, 403);
    assert.equal(await (await stack.ingest.queue.getJob(failed.webhookId))?.getState(), 'failed');

    const logout = await request(stack, '/admin/logout', { headers: { cookie } });
    assert.equal(logout.status, 303);
    assert.match(logout.headers.get('set-cookie') ?? '', /^inlet_admin=; .*Max-Age=0/);
  });

  it('retries a dead-lettered delivery through the API; the worker then runs it', async () => {
    const path = `${API}/${QUEUE_NAME}/${failed.webhookId}/retry`;
    const answer = await request(stack, path, { method: 'PUT', headers: bearer(stack.token) });
    assert.equal(answer.status, 204);
    await stack.waitForState(failed.webhookId, 'completed');
    assert.ok(stack.succeeded.has(failed.predictionId));
  });

  it('never redirects a login to another site', async () => {
    const login = await request(stack, '/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: stack.token, next: 'https://evil.example/' }).toString(),
    });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/admin/queues/');
    const page = await request(stack, '/admin/login?next=//evil.example');
    assert.doesNotMatch(page.text, /evil/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  });

  it('refuses a login posted from another site', async () => {
    const login = await request(stack, '/admin/login', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'sec-fetch-site': 'cross-site',
      },
      body: `token=${stack.token}`,
    });
    assert.equal(login.status, 403);
    assert.equal(login.headers.get('set-cookie'), null);
  });
});

describe('AdminCredentials', () => {
  const token = 'a-long-enough-admin-token';

  it('accepts its own sessions until they expire', () => {
    const credentials = new AdminCredentials(token);
    const now = Date.UTC(2026, 10, 27, 8);
    const session = credentials.issueSession(now);
    assert.equal(credentials.verifySession(session, now + 1000), true);
    assert.equal(credentials.verifySession(session, now + SESSION_SECONDS * 1000 + 1), false);
  });

  it('ends every session when the token changes', () => {
    const session = new AdminCredentials(token).issueSession();
    assert.equal(new AdminCredentials(`${token}-rotated`).verifySession(session), false);
  });

  it('refuses forged and malformed sessions', () => {
    const credentials = new AdminCredentials(token);
    const [version, , signature] = credentials.issueSession().split('.');
    const later = Math.floor(Date.now() / 1000) + 10 * SESSION_SECONDS;
    for (const forged of [
      `${version}.${later}.${signature}`,
      '',
      'v1',
      'v1.abc.def',
      token,
      undefined,
    ]) {
      assert.equal(credentials.verifySession(forged), false, String(forged));
    }
  });

  it('matches Bearer headers only for the exact token', () => {
    const credentials = new AdminCredentials(token);
    assert.equal(credentials.matchesAuthorization(`Bearer ${token}`), true);
    assert.equal(credentials.matchesAuthorization(`bearer ${token}`), true);
    assert.equal(credentials.matchesAuthorization(`Basic ${token}`), false);
    assert.equal(credentials.matchesAuthorization(`Bearer ${token}x`), false);
    assert.equal(credentials.matchesAuthorization(undefined), false);
  });
});
