import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * Records a terminal processor's success in the prediction's record, once per prediction, as
 * `done:<processor>` → `run` (`<webhook id> <try token>`); renews the record's expiry unless
 * `held` (the try still holds the prediction's lock, whose taking and renewals renewed it).
 * Returns 1 when `run` is the success recorded (also for a resend of the call that recorded it),
 * 0 when another try's is. A record without a status gets no mark: it expired while a try whose
 * lock had lapsed still ran, and beginDelivery-3 reads no marks from such a record. One body for
 * this script and finishDelivery-3.
 */
export const RECORD_SUCCESS_FUNCTION = `local function recordSuccess(prediction, processor, run, retention, held)
  if not held and redis.call('HEXISTS', prediction, 'status') == 0 then return 1 end
  local first = 1
  if redis.call('HSETNX', prediction, 'done:' .. processor, run) == 0 then
    if redis.call('HGET', prediction, 'done:' .. processor) ~= run then first = 0 end
  end
  if not held then redis.call('EXPIRE', prediction, retention) end
  return first
end`;

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
  lua: `${RECORD_SUCCESS_FUNCTION}
local first = 1
if ARGV[2] == '1' then
  first = recordSuccess(KEYS[1], ARGV[1], ARGV[3] .. ' ' .. ARGV[5], ARGV[4], false)
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
