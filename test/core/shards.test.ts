import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  globalPrefix,
  queuePrefix,
  recordPrefix,
  recordPrefixOf,
  shardOf,
  slotOf,
} from '../../src/core/shards.js';

describe('shard layout', () => {
  it('keeps the single-queue key layout with one shard, on one Redis or a cluster', () => {
    for (const cluster of [false, true]) {
      const layout = { prefix: cluster ? '{inlet}' : 'inlet', shards: 1, cluster };
      assert.equal(queuePrefix(layout, 0), layout.prefix);
      assert.equal(recordPrefix(layout, 0), layout.prefix);
      assert.equal(recordPrefixOf(layout, 'any-prediction'), layout.prefix);
      assert.equal(globalPrefix(layout), layout.prefix);
      assert.equal(shardOf('any-prediction', 1), 0);
    }
  });

  it('on one Redis, moves only queues: shard 0 stays, records stay under the prefix', () => {
    const layout = { prefix: 'inlet', shards: 4, cluster: false };
    assert.equal(queuePrefix(layout, 0), 'inlet');
    assert.equal(queuePrefix(layout, 3), 'inlet:{s3}');
    assert.equal(recordPrefix(layout, 3), 'inlet');
    assert.equal(globalPrefix(layout), 'inlet');
  });

  it('in a cluster, puts a shard queue, its marks and its ledger in one slot of their own', () => {
    const layout = { prefix: 'inlet', shards: 6, cluster: true };
    const slots = new Set<number>();
    for (let shard = 0; shard < 6; shard++) {
      const prefix = queuePrefix(layout, shard);
      assert.equal(recordPrefix(layout, shard), prefix);
      const slot = slotOf(`${prefix}:deliveries:wait`);
      assert.equal(slotOf(`${prefix}:seen:msg_1`), slot);
      assert.equal(slotOf(`${prefix}:prediction:p1:lock`), slot);
      slots.add(slot);
    }
    assert.equal(slots.size, 6);
    assert.equal(globalPrefix(layout), '{inlet}');
  });

  it('routes a prediction to the same shard every time, and spreads predictions', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) {
      const shard = shardOf(`prediction-${i}`, 4);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    for (const count of counts) assert.ok(count > 800 && count < 1200, String(counts));
    assert.equal(
      shardOf('e0hd0y5xzhrmc0cmyvmrq9xcy4', 4),
      shardOf('e0hd0y5xzhrmc0cmyvmrq9xcy4', 4),
    );
  });

  it("computes Redis Cluster's hash slots (CRC16, hash tags)", () => {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert.equal(slotOf('123456789'), 0x31c3);
    assert.equal(slotOf('foo'), 12182);
    assert.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'));
    assert.equal(slotOf('{}foo'), slotOf('{}foo'));
    assert.notEqual(slotOf('{}foo'), slotOf('foo'));
  });
});
