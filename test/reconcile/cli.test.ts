import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { runCli } from '../support/cli.js';
import { FakeReplicate } from '../support/fake-replicate.js';
import { TestRedis } from '../support/redis-server.js';
import { predictionAt } from './helpers.js';

let redis: TestRedis;
let client: Redis;
let fake: FakeReplicate;
before(async () => {
  redis = await TestRedis.start();
  client = redis.client();
  fake = await FakeReplicate.start();
});
after(async () => {
  client.disconnect();
  await fake.close();
  await redis.destroy();
});

describe('inlet reconcile (the command)', () => {
  it('--once --dry-run lists what it would deliver and stores nothing; --once delivers it once', async () => {
    const lost = predictionAt('succeeded', 30);
    const recorded = predictionAt('failed', 40);
    fake.put(lost, recorded, predictionAt('processing', 2));
    const prefix = `cli${process.pid}`;
    await client.hset(`${prefix}:prediction:${recorded.id}`, 'status', 'failed');
    const env = {
      REDIS_URL: redis.url,
      INLET_PREFIX: prefix,
      REPLICATE_API_TOKEN: fake.token,
      REPLICATE_API_BASE_URL: fake.url,
      LOG_LEVEL: 'warn',
    };

    const dry = await runCli(['reconcile', '--once', '--dry-run'], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(
        `^reconcile_${lost.id}_succeeded  prediction ${lost.id}  succeeded  completed \\S+  would deliver$`,
        'm',
      ),
    );
    assert.match(
      dry.stdout,
      /^dry run: 1 page, 0 gets \(1 API request\); 3 predictions seen, 1 recorded, 1 deferred, 1 would be delivered; stopped at end; nothing stored$/m,
    );
    const written = (await client.keys(`${prefix}:*`)).filter(
      (k) => k !== `${prefix}:deliveries:meta`,
    );
    assert.deepEqual(written, [`${prefix}:prediction:${recorded.id}`], 'a dry run stores nothing');

    const real = await runCli(['reconcile', '--once'], { env });
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, new RegExp(`reconcile_${lost.id}_succeeded .* accepted$`, 'm'));
    assert.equal(await client.exists(`${prefix}:deliveries:reconcile_${lost.id}_succeeded`), 1);
  });

  it('refuses to start without a token, in one line', async () => {
    const result = await runCli(['reconcile', '--once'], { env: { REDIS_URL: redis.url } });
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /REPLICATE_API_TOKEN is not set/);
  });

  it('answers --help', async () => {
    const result = await runCli(['reconcile', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--once/);
    assert.match(result.stdout, /--dry-run/);
  });
});
