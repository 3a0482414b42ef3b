import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * markProcessorDone-2: records one processor's success, before the next one starts.
 *   KEYS[1] `<prefix>:prediction:<id>`   KEYS[2] `<prefix>:delivery:<webhook-id>`
 *   ARGV[1] processor name   ARGV[2] `1` for a terminal delivery   ARGV[3] webhook id
 *   ARGV[4] ledger retention, s   ARGV[5] the try's token
 * A terminal processor's success is recorded once per prediction, as `done:<processor>` →
 * `<webhook id> <try token>`. Returns 1 when this try's success is the one recorded (also when
 * the call is a resend of the one that recorded it), or 0 when another try had recorded it: the
 * processor ran twice for one prediction, which only a lapsed lock can cause. The mark goes only
 * into a record that holds the prediction's status: one that expired while a try whose lock had
 * lapsed still ran is not made again with a mark alone (beginDelivery-3 reads no marks from a
 * record without a status).
 */
export const markProcessorDone2 = {
  name: 'markProcessorDone',
  numberOfKeys: 2,
  lua: `
local first = 1
-- A record without a status (expired under a try whose lock lapsed) holds no mark.
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  local run = ARGV[3] .. ' ' .. ARGV[5]
  if redis.call('HSETNX', KEYS[1], 'done:' .. ARGV[1], run) == 0 then
    if redis.call('HGET', KEYS[1], 'done:' .. ARGV[1]) ~= run then first = 0 end
  end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
redis.call('HSET', KEYS[2], 'done:' .. ARGV[1], '1')
redis.call('EXPIRE', KEYS[2], ARGV[4])
return first`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    markProcessorDone(
      predictionKey: string,
      deliveryKey: string,
      processor: string,
      terminal: '0' | '1',
      webhookId: string,
      retentionSeconds: number,
      tryToken: string,
    ): Result<number, Context>;
  }
}
