import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * releasePredictionLock-1: gives the prediction lock back if it is still ours.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   ARGV[1] the try's token
 * Returns 1 when it released the lock, 0 when the lock was not ours (lapsed, taken by another
 * try, or already released by this call's first sending). Safe to resend.
 */
export const releasePredictionLock1 = {
  name: 'releasePredictionLock',
  numberOfKeys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    releasePredictionLock(lockKey: string, tryToken: string): Result<number, Context>;
  }
}
