import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * finishDelivery-2: ends a delivery that has nothing left to do.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   KEYS[2] `<prefix>:delivery:<webhook-id>`
 *   ARGV[1] the try's token, or empty when the try holds no lock
 * Gives the lock back if it is still ours and forgets the delivery's progress. Returns the
 * number of progress hashes deleted (1, or 0 when there was none). Safe to resend.
 */
export const finishDelivery2 = {
  name: 'finishDelivery',
  numberOfKeys: 2,
  lua: `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('DEL', KEYS[2])`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    finishDelivery(lockKey: string, deliveryKey: string, tryToken: string): Result<number, Context>;
  }
}
