import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * The script's body as a Lua function of its three keys and ARGV, for the scripts that also run
 * it on the job BullMQ hands a worker (fetch-and-begin.ts): one body, so the two cannot drift
 * apart.
 */
export const BEGIN_DELIVERY_FUNCTION = `local function beginDelivery(prediction, lock, delivery, ARGV)
  -- A status after the recorded terminal one: counted once per try (a resend finds its token).
  local function skip(recorded)
    if redis.call('HGET', delivery, 'try') ~= ARGV[1] then
      redis.call('HINCRBY', prediction, 'skipped', 1)
      redis.call('HSET', delivery, 'try', ARGV[1])
      redis.call('EXPIRE', delivery, ARGV[3])
    end
    redis.call('EXPIRE', prediction, ARGV[3])
    return {'skip', recorded}
  end

  local terminal = ARGV[5] == '1'
  local recorded
  local pending = {}
  if terminal then
    if redis.call('HSETNX', prediction, 'status', ARGV[4]) == 1 then
      -- The first terminal delivery: a record without a status holds no processor's mark.
      redis.call('EXPIRE', prediction, ARGV[3])
      recorded = ARGV[4]
      for i = 8, #ARGV do pending[#pending + 1] = ARGV[i] end
    else
      -- The status and every wanted processor's mark in one read.
      local fields = {'status'}
      for i = 8, #ARGV do fields[#fields + 1] = 'done:' .. ARGV[i] end
      local got = redis.call('HMGET', prediction, unpack(fields))
      recorded = got[1]
      if recorded ~= ARGV[4] then return skip(recorded) end
      redis.call('EXPIRE', prediction, ARGV[3])
      for i = 8, #ARGV do
        if not got[i - 6] then pending[#pending + 1] = ARGV[i] end
      end
    end
  else
    recorded = redis.call('HGET', prediction, 'status')
    if recorded then return skip(recorded) end
    if #ARGV >= 8 then
      local fields = {}
      for i = 8, #ARGV do fields[#fields + 1] = 'done:' .. ARGV[i] end
      local got = redis.call('HMGET', delivery, unpack(fields))
      for i = 8, #ARGV do
        if not got[i - 7] then pending[#pending + 1] = ARGV[i] end
      end
    end
  end
  if #pending == 0 then return {'done', recorded or ''} end
  if redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {'run', recorded or '', unpack(pending)}
  end
  if redis.call('GET', lock) == ARGV[1] then
    redis.call('SET', lock, ARGV[1], 'PX', ARGV[2])
    return {'run', recorded or '', unpack(pending)}
  end
  local resent = redis.call('HGET', delivery, 'try') == ARGV[1]
  redis.call('HSET', delivery, 'predictionId', ARGV[7], 'status', ARGV[4], 'try', ARGV[1])
  redis.call('EXPIRE', delivery, ARGV[3])
  if resent then return {'busy', redis.call('HGET', delivery, 'waits') or '0'} end
  return {'busy', tostring(redis.call('HINCRBY', delivery, 'waits', 1))}
end`;

/**
 * beginDelivery-3: decides what one try of a delivery does, and takes the prediction's lock if
 * it runs.
 *   KEYS[1] `<prefix>:prediction:<id>`        HASH, the prediction's ledger
 *   KEYS[2] `<prefix>:prediction:<id>:lock`   STRING, the holder's token
 *   KEYS[3] `<prefix>:delivery:<webhook-id>`  HASH, this delivery's progress
 *   ARGV[1] the try's token (unique per try; held in the lock when it runs)
 *   ARGV[2] lock lifetime, ms   ARGV[3] ledger retention, s
 *   ARGV[4] the delivery's status   ARGV[5] `1` when that status is terminal
 *   ARGV[6] webhook id   ARGV[7] prediction id
 *   ARGV[8…] names of the processors that want this status
 * Returns one of
 *   {'skip', recorded}      a non-terminal (or a different terminal) status after the recorded
 *                           terminal one: counted in the ledger's `skipped`, not dispatched
 *   {'done', recorded}      every wanted processor already succeeded (no lock taken)
 *   {'busy', waits}         another try holds the lock; `waits` counts this delivery's waits
 *   {'run', recorded, name…} the lock is ours; these processors still have to succeed
 * The first terminal delivery to get here records the prediction's terminal status, whether or
 * not it can run yet, so that later non-terminal deliveries are skipped from that moment on.
 *
 * The common case (a first terminal delivery, lock free) takes 3 commands: the status recorded
 * with `HSETNX`, its expiry, the lock with one `SET NX`. That `HSETNX` also answers whether the
 * record is new, and a new record holds no processor's mark: marks are written only for a
 * terminal delivery, after its begin recorded the status in the same hash, which expires as a
 * whole (finishDelivery-3 and markProcessorDone-2 write no mark into a record that expired under
 * a try whose lock had lapsed). Only a record that exists is read, status and the wanted
 * processors' marks in one `HMGET`. A try that runs writes nothing to the delivery's progress:
 * the lock holds its token, and the delivery's job names the prediction. The progress is kept
 * for a try that waits or is skipped (its token, to count it once), a processor's success on a
 * non-terminal delivery with more to run (markProcessorDone-2) and a failed try
 * (PredictionLedger.fail). (8 commands before, then 6, then 4; see CHANGELOG for the measured
 * cost.)
 *
 * Safe to resend (ioredis re-sends a call whose reply was lost when it reconnects): a resend of
 * a `run` finds the lock already its own, renews it and answers `run`; a try that waits or is
 * skipped keeps its token in the delivery's `try` field, and a call that finds its own token
 * counts no second skip or wait.
 */
export const beginDelivery3 = {
  name: 'beginDelivery',
  numberOfKeys: 3,
  lua: `${BEGIN_DELIVERY_FUNCTION}
return beginDelivery(KEYS[1], KEYS[2], KEYS[3], ARGV)`,
} as const satisfies RedisScript;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    beginDelivery(
      predictionKey: string,
      lockKey: string,
      deliveryKey: string,
      ...args: Array<string | number>
    ): Result<string[], Context>;
  }
}
