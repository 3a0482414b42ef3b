import type { RedisClient as Redis } from '../../core/redis.js';
import { closeRedis, createRedis } from '../../core/redis.js';
import { globalPrefix } from '../../core/shards.js';

/** Upper bounds (seconds) of the completion-to-stored histogram; `+Inf` is the count. */
export const STORED_BUCKETS = [60, 120, 300, 600, 900, 1800, 2700, 3600] as const;

/**
 * `<prefix>:reconcile:outputs-stored` HASH: `le:<bound>` → runs that stored a prediction's
 * outputs within `bound` seconds of its completion, `count`, `sum`. Written by keep-outputs in
 * the workers, exported by `inlet reconcile` on its `/metrics` as
 * `inlet_outputs_stored_after_completion_seconds`.
 */
export function storedFiguresKey(prefix: string): string {
  return `${prefix}:reconcile:outputs-stored`;
}

let connection: Redis | undefined;

/**
 * Counts one prediction whose outputs were stored `seconds` after it completed: one pipelined
 * write per succeeded prediction, best effort (a figure lost to a Redis blip fails no run).
 * Only when `REDIS_URL` is set in the environment, as it is for `inlet worker`.
 */
export function recordOutputsStored(seconds: number, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.REDIS_URL) return;
  if (!connection) {
    // Patient: the first figure is written once connected; workers do nothing while Redis is away.
    connection = createRedis(env.REDIS_URL, {
      role: 'patient',
      name: 'inlet:keep-outputs',
      cluster: env.REDIS_CLUSTER === '1',
    });
    connection.on('error', () => undefined);
  }
  const key = storedFiguresKey(
    globalPrefix({
      prefix: env.INLET_PREFIX || 'inlet',
      shards: Number(env.INLET_SHARDS) || 1,
      cluster: env.REDIS_CLUSTER === '1',
    }),
  );
  const pipeline = connection.pipeline();
  for (const bound of STORED_BUCKETS) if (seconds <= bound) pipeline.hincrby(key, `le:${bound}`, 1);
  pipeline.hincrby(key, 'count', 1).hincrbyfloat(key, 'sum', seconds);
  pipeline.exec().catch(() => undefined);
}

/** Closes the figures' connection, if one was opened (tests; a worker simply exits). */
export async function closeStoredFigures(): Promise<void> {
  const open = connection;
  connection = undefined;
  if (open) await closeRedis(open);
}

/** The histogram in Prometheus text, from the hash. */
export function storedFiguresText(hash: Record<string, string>): string {
  const name = 'inlet_outputs_stored_after_completion_seconds';
  const lines = [
    `# HELP ${name} Seconds from a prediction's completion to keep-outputs having stored its files`,
    `# TYPE ${name} histogram`,
  ];
  for (const bound of STORED_BUCKETS) {
    lines.push(`${name}_bucket{le="${bound}"} ${Number(hash[`le:${bound}`] ?? 0)}`);
  }
  lines.push(`${name}_bucket{le="+Inf"} ${Number(hash.count ?? 0)}`);
  lines.push(`${name}_sum ${Number(hash.sum ?? 0)}`, `${name}_count ${Number(hash.count ?? 0)}`);
  return `${lines.join('\n')}\n`;
}
