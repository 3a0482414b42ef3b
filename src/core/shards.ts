/**
 * Where inlet's keys live when deliveries are spread over `INLET_SHARDS` BullMQ queues, on one
 * Redis or a Redis Cluster. The rules (README "Scaling", docs/design.md "Keys"):
 *
 * - a delivery goes to shard `shardOf(prediction id, N)`, so all deliveries of a prediction share
 *   one queue;
 * - shard 0 of a single Redis, and the one shard of `INLET_SHARDS=1`, keep the prefix itself:
 *   `INLET_SHARDS=1` is the key layout inlet always had, and raising N on a single Redis leaves
 *   shard 0's queue where it was;
 * - every other shard's queue is under `<prefix>:{s<i>}`: its own hash tag, so its own slot,
 *   which a cluster places on one of its masters;
 * - on a single Redis, the de-duplication marks and the ledger stay under the prefix whatever N
 *   is (no slots to share), so changing N moves only queued jobs, never a guarantee's record;
 * - in a cluster with N > 1 they must share the slot of the prediction's queue (the store script
 *   checks the mark and adds the job at once; the ledger scripts take a prediction's keys
 *   together), so they live under the shard's prefix; inlet-wide keys (worker figures, the
 *   reconciler's state) go under `{<prefix>}`, one slot of their own.
 */
export interface ShardLayout {
  /** `INLET_PREFIX`. */
  prefix: string;
  /** `INLET_SHARDS`. */
  shards: number;
  /** `REDIS_CLUSTER`. */
  cluster: boolean;
}

export function layoutOf(config: {
  INLET_PREFIX: string;
  INLET_SHARDS: number;
  REDIS_CLUSTER: boolean;
}): ShardLayout {
  return {
    prefix: config.INLET_PREFIX,
    shards: config.INLET_SHARDS,
    cluster: config.REDIS_CLUSTER,
  };
}

/** True when a prediction's records must sit in its shard's slot: a cluster with N > 1. */
function tagged(layout: ShardLayout): boolean {
  return layout.cluster && layout.shards > 1;
}

/** The shard (0 to N-1) a prediction's deliveries go to: FNV-1a of its id, modulo N. */
export function shardOf(predictionId: string, shards: number): number {
  if (shards <= 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < predictionId.length; i++) {
    hash ^= predictionId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

/** The BullMQ prefix of shard `index`'s queue. */
export function queuePrefix(layout: ShardLayout, index: number): string {
  if (index === 0 && !tagged(layout)) return layout.prefix;
  return `${layout.prefix}:{s${index}}`;
}

/** Where shard `index`'s de-duplication marks and ledger keys live. */
export function recordPrefix(layout: ShardLayout, index: number): string {
  return tagged(layout) ? queuePrefix(layout, index) : layout.prefix;
}

/** Where a prediction's ledger keys live. */
export function recordPrefixOf(layout: ShardLayout, predictionId: string): string {
  return recordPrefix(layout, shardOf(predictionId, layout.shards));
}

/** Where inlet-wide keys live: worker figures, the reconciler's state, the readiness probe. */
export function globalPrefix(layout: ShardLayout): string {
  return tagged(layout) ? `{${layout.prefix}}` : layout.prefix;
}

/** 0 to N-1. */
export function allShards(layout: ShardLayout): number[] {
  return Array.from({ length: layout.shards }, (_, index) => index);
}

/** The Redis Cluster hash slot of `key` (CRC16-XMODEM of its hash tag, or of the whole key). */
export function slotOf(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    crc &= 0xffff;
  }
  return crc % 16384;
}
