import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ConfigError,
  loadConfig,
  redactUrl,
  requireWebhookSecrets,
} from '../../src/core/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(config.PORT, 3000);
    assert.equal(config.HOST, '0.0.0.0');
    assert.equal(config.WEBHOOK_TOLERANCE_SECONDS, 300);
    assert.ok(config.INLET_MAX_BODY_BYTES >= 5 * 1024 * 1024);
    assert.equal(config.INLET_PREFIX, 'inlet');
    assert.ok(config.INLET_DEDUP_WINDOW_SECONDS >= 86_400);
    assert.equal(config.LOG_LEVEL, 'info');
    assert.equal(config.INLET_ADMIN_TOKEN, undefined);
  });

  it('reads the Redis Cluster and shard settings, and refuses what would fail at every delivery', () => {
    const defaults = loadConfig({});
    assert.equal(defaults.REDIS_CLUSTER, false);
    assert.equal(defaults.INLET_SHARDS, 1);
    assert.equal(defaults.INLET_WORKER_SHARDS, undefined);
    assert.equal(defaults.INLET_MIN_REPLICAS, 0);
    const seeds = 'redis://:pw@10.0.0.1:7000, redis://10.0.0.2:7000';
    const cluster = loadConfig({ REDIS_CLUSTER: '1', REDIS_URL: seeds, INLET_PREFIX: '{in}' });
    assert.equal(cluster.REDIS_URL, seeds);
    assert.deepEqual(
      loadConfig({ INLET_WORKER_SHARDS: '0-2, 7,2' }).INLET_WORKER_SHARDS,
      [0, 1, 2, 7],
    );
    const refused = (env: Record<string, string>, pattern: RegExp) =>
      assert.throws(
        () => loadConfig(env),
        (error: Error) =>
          error instanceof ConfigError &&
          pattern.test(error.message) &&
          !error.message.includes('pw'),
      );
    refused({ REDIS_URL: seeds }, /^REDIS_URL: names 2 hosts; set REDIS_CLUSTER=1/);
    refused({ REDIS_CLUSTER: '1', REDIS_URL: `${seeds},http://x` }, /^REDIS_URL: expected redis:/);
    refused(
      { REDIS_CLUSTER: '1', REDIS_URL: seeds },
      /^INLET_PREFIX: a Redis Cluster needs a hash tag/,
    );
    refused({ REDIS_CLUSTER: '1', INLET_PREFIX: '{}x' }, /^INLET_PREFIX: a Redis Cluster needs/);
    refused(
      { INLET_SHARDS: '4', INLET_PREFIX: '{inlet}' },
      /^INLET_PREFIX: with INLET_SHARDS above 1/,
    );
    refused({ INLET_SHARDS: '0' }, /^INLET_SHARDS: expected at least 1/);
    refused({ INLET_WORKER_SHARDS: 'all' }, /^INLET_WORKER_SHARDS: expected indexes or ranges/);
    refused({ REDIS_CLUSTER: 'yes' }, /^REDIS_CLUSTER: expected 1 or 0/);
  });

  it('splits several secrets on spaces and commas', () => {
    const config = loadConfig({ REPLICATE_WEBHOOK_SECRET: 'whsec_a, whsec_b whsec_c' });
    assert.deepEqual(config.REPLICATE_WEBHOOK_SECRET, ['whsec_a', 'whsec_b', 'whsec_c']);
  });

  it('reads NAME_FILE, as Docker secrets give them, and refuses both forms at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-config-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'whsec_fromfile\n');
    assert.deepEqual(loadConfig({ REPLICATE_WEBHOOK_SECRET_FILE: file }).REPLICATE_WEBHOOK_SECRET, [
      'whsec_fromfile',
    ]);
    assert.throws(
      () =>
        loadConfig({ REPLICATE_WEBHOOK_SECRET_FILE: file, REPLICATE_WEBHOOK_SECRET: 'whsec_x' }),
      /not both/,
    );
    assert.throws(
      () => loadConfig({ REPLICATE_WEBHOOK_SECRET_FILE: join(dir, 'missing') }),
      (error: Error) => error instanceof ConfigError && /ENOENT/.test(error.message),
    );
  });

  it('names the variable in one line for a bad value, and never shows a secret', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'eighty' }, /^PORT: expected a whole number \(got "eighty"\)$/],
      [{ PORT: '70000' }, /^PORT: expected at most 65535/],
      [{ REDIS_URL: 'localhost:6379' }, /^REDIS_URL: /],
      [{ INLET_MAX_BODY_BYTES: '1024' }, /^INLET_MAX_BODY_BYTES: expected at least 5242880/],
      [
        { INLET_DEDUP_WINDOW_SECONDS: '60' },
        /^INLET_DEDUP_WINDOW_SECONDS: expected at least 86400/,
      ],
      [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: /],
      [{ INLET_INSECURE_SKIP_VERIFY: 'maybe' }, /^INLET_INSECURE_SKIP_VERIFY: expected 1 or 0/],
      [{ INLET_ADMIN_TOKEN: 'short' }, /^INLET_ADMIN_TOKEN: .*not shown/],
    ];
    for (const [env, pattern] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: Error) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, pattern);
          assert.ok(!error.message.includes('\n'));
          assert.ok(!error.message.includes('short'));
          return true;
        },
      );
    }
  });

  it('makes the ingest refuse to start without a secret unless verification is skipped', () => {
    assert.throws(
      () => requireWebhookSecrets(loadConfig({})),
      /REPLICATE_WEBHOOK_SECRET is not set/,
    );
    assert.deepEqual(requireWebhookSecrets(loadConfig({ INLET_INSECURE_SKIP_VERIFY: '1' })), []);
  });

  it('never shows the credentials of REDIS_URL in an error', () => {
    for (const url of [
      'redis://user:hunter2secret@127.0.0.1:notaport',
      'redis://:hunter2secret@[::1',
      'http://admin:hunter2secret@example.com',
      'redis://127.0.0.1:port?password=hunter2secret',
    ]) {
      assert.throws(
        () => loadConfig({ REDIS_URL: url }),
        (error: Error) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, /^REDIS_URL: /);
          assert.ok(!error.message.includes('hunter2'), error.message);
          return true;
        },
      );
    }
    assert.equal(redactUrl('redis://u:p@h:1/0'), 'redis://…@h:1/0');
    assert.equal(redactUrl('at rediss://:p@h and redis://h'), 'at rediss://…@h and redis://h');
    assert.equal(redactUrl('redis://h?db=1&password=p'), 'redis://h?db=1&password=…');
  });

  it('takes only 1 or 0 for INLET_INSECURE_SKIP_VERIFY', () => {
    assert.equal(loadConfig({ INLET_INSECURE_SKIP_VERIFY: '1' }).INLET_INSECURE_SKIP_VERIFY, true);
    assert.equal(loadConfig({ INLET_INSECURE_SKIP_VERIFY: '0' }).INLET_INSECURE_SKIP_VERIFY, false);
    assert.equal(loadConfig({}).INLET_INSECURE_SKIP_VERIFY, false);
    for (const value of ['true', 'yes', 'on', 'false', 'no', 'TRUE']) {
      assert.throws(
        () => loadConfig({ INLET_INSECURE_SKIP_VERIFY: value }),
        /^ConfigError: INLET_INSECURE_SKIP_VERIFY: expected 1 or 0/,
        value,
      );
    }
  });

  it('refuses to skip verification while a secret is configured', () => {
    const config = loadConfig({
      INLET_INSECURE_SKIP_VERIFY: '1',
      REPLICATE_WEBHOOK_SECRET: 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0',
    });
    assert.throws(
      () => requireWebhookSecrets(config),
      (error: Error) =>
        error instanceof ConfigError &&
        /^INLET_INSECURE_SKIP_VERIFY=1 and REPLICATE_WEBHOOK_SECRET are both set/.test(
          error.message,
        ) &&
        !error.message.includes('c2VjcmV0'),
    );
  });
});
