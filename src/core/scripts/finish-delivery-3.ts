import type { Result } from 'ioredis';
import { RECORD_SUCCESS_FUNCTION } from './mark-processor-done-2.js';
import type { RedisScript } from './redis-script.js';

/**
 * The script's body as a Lua function of its three keys and ARGV (after the
 * {@link RECORD_SUCCESS_FUNCTION} it calls), for the script that also runs it before BullMQ
 * completes the delivery's job (fetch-and-begin.ts): one body for both.
 */
export const FINISH_DELIVERY_FUNCTION = `${RECORD_SUCCESS_FUNCTION}
local function finishDelivery(prediction, lock, delivery, ARGV)
  local held = ARGV[1] ~= '' and redis.call('GET', lock) == ARGV[1]
  local first = 1
  if ARGV[2] ~= '' and ARGV[3] == '1' then
    first = recordSuccess(prediction, ARGV[2], ARGV[4] .. ' ' .. ARGV[1], ARGV[5], held)
  end
  if held then
    redis.call('DEL', lock, delivery)
  else
    redis.call('DEL', delivery)
  end
  return first
end`;

/**
 * finishDelivery-3: ends a delivery that has nothing left to do, recording its last processor's
 * success in the same step.
 *   KEYS[1] `<prefix>:prediction:<id>`   KEYS[2] `<prefix>:prediction:<id>:lock`
 *   KEYS[3] `<prefix>:delivery:<webhook-id>`
 *   ARGV[1] the try's token, or empty when the try holds no lock
 *   ARGV[2] the processor whose success to record first, or empty for none
 *   ARGV[3] `1` for a terminal delivery   ARGV[4] webhook id   ARGV[5] ledger retention, s
 * With a processor, records its success as markProcessorDone-2 does: for a terminal delivery
 * once per prediction, as `done:<processor>` → `<webhook id> <try token>`; for a non-terminal
 * one nothing is kept, because the delivery's progress is deleted next. Then gives the lock back
 * if it is still ours and forgets the delivery's progress.
 * Returns 1, or 0 when another try had recorded the terminal processor's success (it ran twice
 * for one prediction, which only a lapsed lock can cause).
 *
 * The last (in the common case the only) processor of a try is recorded here rather than by
 * markProcessorDone-2 followed by this script: one script call and round trip fewer per delivery.
 * The lock and the progress go in one `DEL` when the lock is ours, the common case. While the
 * lock is ours the record's expiry is not renewed: the lock's taking (beginDelivery-3) and each
 * renewal (renewPredictionLock-2) gave it the full retention at most a lock lifetime ago. A try
 * whose lock lapsed renews it here, when the record still holds the prediction's status (as in
 * markProcessorDone-2, a record is not made again with a mark alone). Three commands in the
 * common case (four before).
 * Safe to resend: a resend finds its own token in the record and answers 1 again, finds the lock
 * gone or another's, and deletes nothing more (it renews the record's expiry, which is harmless).
 */
export const finishDelivery3 = {
  name: 'finishDelivery',
  numberOfKeys: 3,
  lua: `${FINISH_DELIVERY_FUNCTION}
return finishDelivery(KEYS[1], KEYS[2], KEYS[3], ARGV)`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    finishDelivery(
      predictionKey: string,
      lockKey: string,
      deliveryKey: string,
      tryToken: string,
      processor: string,
      terminal: '0' | '1',
      webhookId: string,
      retentionSeconds: number,
    ): Result<number, Context>;
  }
}
