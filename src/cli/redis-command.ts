import { type Config, ConfigError, loadConfig, redactUrl } from '../core/config.js';
import { withDeadline } from '../core/deadline.js';
import { closeRedis, createRedis, type RedisClient } from '../core/redis.js';
import { announceRedis, redisTarget } from './redis-target.js';

/**
 * Runs a command's work against the Redis it should talk to (see redis-target.ts), after saying
 * which on stderr; fails in one line within seconds when that Redis is not there.
 */
export async function withRedis<T>(
  name: string,
  work: (redis: RedisClient, config: Config) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  const target = redisTarget(config);
  announceRedis(target);
  const redis = createRedis(target.url, {
    role: 'patient',
    name: `inlet:${name}`,
    cluster: config.REDIS_CLUSTER,
  });
  redis.on('error', () => undefined);
  try {
    await reachable(redis, target.url);
    return await work(redis, { ...config, REDIS_URL: target.url });
  } finally {
    await closeRedis(redis);
  }
}

/** A patient client would wait for ever: give up after a few seconds, in one line. */
export async function reachable(redis: RedisClient, url: string): Promise<void> {
  try {
    await withDeadline(redis.ping(), 5_000, () => new Error('timeout'));
  } catch {
    throw new ConfigError(
      `cannot reach Redis at ${redactUrl(url)}: set REDIS_URL to the Redis inlet uses, or run this where inlet dev runs`,
    );
  }
}
