import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * renewPredictionLock-1: extends the prediction lock if it is still ours.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   ARGV[1] the try's token   ARGV[2] lifetime, ms
 * Returns 1, or 0 when the lock lapsed or another try took it. Safe to resend.
 */
export const renewPredictionLock1 = {
  name: 'renewPredictionLock',
  numberOfKeys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    renewPredictionLock(lockKey: string, tryToken: string, ttlMs: number): Result<number, Context>;
  }
}
