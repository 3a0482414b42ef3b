import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * renewPredictionLock-2: extends the prediction lock if it is still ours, and the prediction's
 * ledger record with it.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   KEYS[2] `<prefix>:prediction:<id>`
 *   ARGV[1] the try's token   ARGV[2] lifetime, ms   ARGV[3] ledger retention, s
 * Returns 1, or 0 when the lock lapsed or another try took it. Safe to resend.
 * The record's expiry moves with the lock so that, while a try holds the lock, the record was
 * given its full retention at most one lock lifetime ago: finishDelivery-3 then records a
 * success in it without renewing its expiry (retention is at least an hour, a lock's lifetime
 * at most ten minutes).
 */
export const renewPredictionLock2 = {
  name: 'renewPredictionLock',
  numberOfKeys: 2,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    renewPredictionLock(
      lockKey: string,
      predictionKey: string,
      tryToken: string,
      ttlMs: number,
      retentionSeconds: number,
    ): Result<number, Context>;
  }
}
