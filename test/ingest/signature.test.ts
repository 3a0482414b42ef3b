import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { decodeSecret, signWebhook, verifyWebhook } from '../../src/ingest/signature.js';
import { makeSecret, samplePrediction, signedHeaders } from '../support/deliveries.js';

// The reference library (`standardwebhooks`) signs; ours verifies. Both must agree exactly.
const secretA = makeSecret();
const secretB = makeSecret();
const body = JSON.stringify(samplePrediction('succeeded'));
// Whole seconds of the real clock: the reference library's verify() reads the clock itself.
const now = Math.floor(Date.now() / 1000) * 1000;
const at = new Date(now);

function reference(secret: string, id = 'msg_2Lh9KRb0pzN4LXYt9D0e9PBhLc1', text = body, when = at) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, when, text),
  };
}

describe('verifyWebhook against the standardwebhooks reference library', () => {
  it('accepts a delivery the reference library signed, from a Buffer or a string', () => {
    const headers = reference(secretA);
    const fromBuffer = verifyWebhook(headers, Buffer.from(body), [secretA], { now });
    assert.deepEqual(fromBuffer, {
      ok: true,
      webhookId: headers['webhook-id'],
      timestamp: now / 1000,
    });
    assert.equal(verifyWebhook(headers, body, [secretA], { now }).ok, true);
    // And the reference library accepts what it signed, so the fixture itself is sound.
    assert.doesNotThrow(() => new Webhook(secretA).verify(body, headers));
  });

  it('accepts any of several secrets (rotation), and secrets already decoded', () => {
    const headers = reference(secretB);
    assert.equal(verifyWebhook(headers, body, [secretA, secretB], { now }).ok, true);
    assert.equal(verifyWebhook(headers, body, [decodeSecret(secretB)], { now }).ok, true);
    assert.deepEqual(verifyWebhook(headers, body, [secretA], { now }), {
      ok: false,
      reason: 'invalid_signature',
    });
  });

  it('accepts any of several signatures, whichever matches', () => {
    const a = reference(secretA)['webhook-signature'];
    const b = reference(secretB)['webhook-signature'];
    const headers = { ...reference(secretA), 'webhook-signature': `${b} ${a}` };
    assert.equal(verifyWebhook(headers, body, [secretA], { now }).ok, true);
    assert.equal(verifyWebhook(headers, body, [secretB], { now }).ok, true);
  });

  it("signs as the tests' own signer (test/support/deliveries.ts) does", () => {
    const headers = signedHeaders(secretA, body, 'msg_y', at);
    assert.equal(headers['webhook-signature'], new Webhook(secretA).sign('msg_y', at, body));
    assert.doesNotThrow(() => new Webhook(secretA).verify(body, headers));
  });

  it('signs exactly as the reference library does, and the reference verifies ours', () => {
    const ours = signWebhook('msg_x', now / 1000, body, [secretA, secretB]);
    const theirs = new Webhook(secretA).sign('msg_x', at, body);
    assert.equal(ours['webhook-signature'].split(' ')[0], theirs);
    assert.doesNotThrow(() => new Webhook(secretB).verify(body, ours));
  });

  it('rejects a tampered body, id or timestamp', () => {
    const headers = reference(secretA);
    const tamperedBody = body.replace('succeeded', 'failed');
    assert.equal(verifyWebhook(headers, tamperedBody, [secretA], { now }).ok, false);
    assert.equal(verifyWebhook(headers, `${body} `, [secretA], { now }).ok, false);
    const otherId = { ...headers, 'webhook-id': 'msg_other' };
    assert.deepEqual(verifyWebhook(otherId, body, [secretA], { now }), {
      ok: false,
      reason: 'invalid_signature',
    });
    const otherTime = { ...headers, 'webhook-timestamp': String(now / 1000 + 1) };
    assert.deepEqual(verifyWebhook(otherTime, body, [secretA], { now }), {
      ok: false,
      reason: 'invalid_signature',
    });
  });

  it('rejects truncated, empty and malformed signatures', () => {
    const headers = reference(secretA);
    const signature = headers['webhook-signature'];
    for (const bad of [
      signature.slice(0, -4),
      'v1,',
      'v1',
      ' ',
      `v1,${'A'.repeat(44)}`,
      'v1,not base64!',
    ]) {
      const result = verifyWebhook({ ...headers, 'webhook-signature': bad }, body, [secretA], {
        now,
      });
      assert.equal(result.ok, false, `accepted ${JSON.stringify(bad)}`);
    }
    const empty = verifyWebhook({ ...headers, 'webhook-signature': '' }, body, [secretA], { now });
    assert.deepEqual(empty, { ok: false, reason: 'missing_headers' });
  });

  it('skips v1a and v2 entries, even when they carry the right bytes', () => {
    const headers = reference(secretA);
    const value = headers['webhook-signature'].slice(3);
    for (const version of ['v1a', 'v2', 'V1']) {
      const result = verifyWebhook(
        { ...headers, 'webhook-signature': `${version},${value}` },
        body,
        [secretA],
        { now },
      );
      assert.deepEqual(result, { ok: false, reason: 'no_v1_signature' });
    }
    const mixed = {
      ...headers,
      'webhook-signature': `v1a,${value} ${headers['webhook-signature']}`,
    };
    assert.equal(verifyWebhook(mixed, body, [secretA], { now }).ok, true);
  });

  it('enforces the tolerance both ways, at its exact edges', () => {
    const toleranceSeconds = 300;
    const edgeOld = reference(secretA, undefined, body, new Date(now - 300_000));
    const edgeNew = reference(secretA, undefined, body, new Date(now + 300_000));
    assert.equal(verifyWebhook(edgeOld, body, [secretA], { now, toleranceSeconds }).ok, true);
    assert.equal(verifyWebhook(edgeNew, body, [secretA], { now, toleranceSeconds }).ok, true);
    const stale = reference(secretA, undefined, body, new Date(now - 301_000));
    const future = reference(secretA, undefined, body, new Date(now + 301_000));
    assert.deepEqual(verifyWebhook(stale, body, [secretA], { now }), {
      ok: false,
      reason: 'timestamp_too_old',
    });
    assert.deepEqual(verifyWebhook(future, body, [secretA], { now }), {
      ok: false,
      reason: 'timestamp_in_future',
    });
    // The reference library agrees that these are out of tolerance.
    assert.throws(() => new Webhook(secretA).verify(body, stale));
  });

  it('names a reason for missing headers and a timestamp that is not Unix seconds', () => {
    const headers = reference(secretA);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const { [name]: _dropped, ...rest } = headers;
      assert.deepEqual(verifyWebhook(rest, body, [secretA], { now }), {
        ok: false,
        reason: 'missing_headers',
      });
    }
    for (const bad of ['1.5e9', 'soon', '-1', '1795766400.0']) {
      const result = verifyWebhook({ ...headers, 'webhook-timestamp': bad }, body, [secretA], {
        now,
      });
      assert.deepEqual(result, { ok: false, reason: 'invalid_timestamp' });
    }
  });

  it('matches header names in any case and reads Fetch Headers', () => {
    const headers = reference(secretA);
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    assert.equal(verifyWebhook(upper, body, [secretA], { now }).ok, true);
    assert.equal(verifyWebhook(new Headers(headers), body, [secretA], { now }).ok, true);
  });

  it('refuses secrets that are not whsec_ keys', () => {
    assert.throws(() => decodeSecret('whsec_'), /whsec_/);
    assert.throws(() => decodeSecret('whsec_not base64'), /whsec_/);
    assert.throws(() => decodeSecret('whsec_c2hvcnQ='), /16 bytes/);
  });

  it('takes the base64 key without whsec_, as the reference library does', () => {
    const bare = secretA.slice('whsec_'.length);
    assert.deepEqual(decodeSecret(bare), decodeSecret(secretA));
    // Signed by the reference library with the bare key, verified with either form.
    const headers = reference(bare);
    assert.equal(verifyWebhook(headers, body, [bare], { now }).ok, true);
    assert.equal(verifyWebhook(headers, body, [secretA], { now }).ok, true);
    assert.throws(() => decodeSecret('not a secret!'), /whsec_<base64>.*base64 part alone/);
  });
});
