import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * oldestWaiting-1: when the job that workers take next was added.
 *   KEYS[1] the queue's wait list   ARGV[1] the queue's job key prefix, `<prefix>:deliveries:`
 * BullMQ pushes new jobs on the left and workers take them from the right, so the right end is
 * the oldest. Returns that job's `timestamp` (Unix ms), or nil when nothing waits. Reads only.
 */
export const oldestWaiting1 = {
  name: 'inletOldestWaiting',
  numberOfKeys: 1,
  lua: `
local id = redis.call('LINDEX', KEYS[1], -1)
if not id then return false end
return redis.call('HGET', ARGV[1] .. id, 'timestamp')`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    inletOldestWaiting(waitKey: string, jobKeyPrefix: string): Result<string | null, Context>;
  }
}
