/**
 * The per-prediction ledger's Lua scripts. Each runs atomically in Redis; all keys of one call
 * share the `INLET_PREFIX`, so with a `{…}` prefix they share a Redis Cluster slot.
 * Key shapes are in prediction-ledger.ts.
 */

/**
 * beginDelivery-3: decides what a delivery does, and takes the prediction's lock if it runs.
 *   KEYS[1] `<prefix>:prediction:<id>`        HASH, the prediction's ledger
 *   KEYS[2] `<prefix>:prediction:<id>:lock`   STRING, the holder's token
 *   KEYS[3] `<prefix>:delivery:<webhook-id>`  HASH, this delivery's progress
 *   ARGV[1] lock token   ARGV[2] lock lifetime, ms   ARGV[3] ledger retention, s
 *   ARGV[4] the delivery's status   ARGV[5] `1` when that status is terminal
 *   ARGV[6] webhook id   ARGV[7] prediction id   ARGV[8] now, Unix ms
 *   ARGV[9…] names of the processors that want this status
 * Returns one of
 *   {'skip', recorded}      a non-terminal (or a different terminal) status after the recorded
 *                           terminal one: counted in the ledger's `skipped`, not dispatched
 *   {'done', recorded}      every wanted processor already succeeded (no lock taken)
 *   {'busy', waits}         another delivery of the prediction holds the lock
 *   {'run', recorded, name…} the lock is ours; these processors still have to succeed
 * The first terminal delivery to get here records the prediction's terminal status, whether or
 * not it can run yet, so that later non-terminal deliveries are skipped from that moment on.
 */
export const BEGIN_DELIVERY = `
local terminal = ARGV[5] == '1'
local recorded = redis.call('HGET', KEYS[1], 'status')
if recorded and (not terminal or recorded ~= ARGV[4]) then
  redis.call('HINCRBY', KEYS[1], 'skipped', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {'skip', recorded}
end
if terminal then
  if not recorded then
    redis.call('HSET', KEYS[1], 'status', ARGV[4], 'terminalAt', ARGV[8])
    recorded = ARGV[4]
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local doneIn = terminal and KEYS[1] or KEYS[3]
local pending = {}
for i = 9, #ARGV do
  if redis.call('HEXISTS', doneIn, 'done:' .. ARGV[i]) == 0 then
    pending[#pending + 1] = ARGV[i]
  end
end
if #pending == 0 then return {'done', recorded or ''} end
redis.call('HSET', KEYS[3], 'predictionId', ARGV[7], 'status', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[3])
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return {'busy', tostring(redis.call('HINCRBY', KEYS[3], 'waits', 1))}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'run', recorded or '', unpack(pending)}`;

/**
 * markProcessorDone-2: records one processor's success, before the next one starts.
 *   KEYS[1] `<prefix>:prediction:<id>`   KEYS[2] `<prefix>:delivery:<webhook-id>`
 *   ARGV[1] processor name   ARGV[2] `1` for a terminal delivery   ARGV[3] webhook id
 *   ARGV[4] ledger retention, s
 * Returns 1, or 0 when a terminal processor's success was already recorded by another delivery:
 * the processor ran twice for one prediction, which only a lost lock can cause.
 */
export const MARK_PROCESSOR_DONE = `
local first = 1
if ARGV[2] == '1' then
  first = redis.call('HSETNX', KEYS[1], 'done:' .. ARGV[1], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
redis.call('HSET', KEYS[2], 'done:' .. ARGV[1], '1')
redis.call('EXPIRE', KEYS[2], ARGV[4])
return first`;

/**
 * renewPredictionLock-1: extends the lock if it is still ours.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   ARGV[1] token   ARGV[2] lifetime, ms
 * Returns 1, or 0 when the lock expired or another delivery took it.
 */
export const RENEW_PREDICTION_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/**
 * releasePredictionLock-1: gives the lock back if it is still ours.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   ARGV[1] token
 */
export const RELEASE_PREDICTION_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * finishDelivery-2: ends a delivery that has nothing left to do.
 *   KEYS[1] `<prefix>:prediction:<id>:lock`   KEYS[2] `<prefix>:delivery:<webhook-id>`
 *   ARGV[1] lock token, or empty when the delivery holds no lock
 * Gives the lock back if it is still ours and forgets the delivery's progress.
 */
export const FINISH_DELIVERY = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('DEL', KEYS[2])`;
