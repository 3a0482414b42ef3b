import type { Result } from 'ioredis';
import { JOB_FIELDS } from '../job.js';
import { isTerminal, type PredictionStatus } from '../prediction.js';
import { BEGIN_DELIVERY_FUNCTION } from './begin-delivery-3.js';
import { bullmqScript } from './bullmq-script.js';
import { FINISH_DELIVERY_FUNCTION } from './finish-delivery-3.js';
import type { RedisScript } from './redis-script.js';

/**
 * BullMQ's scripts that hand a worker its next job, each running the ledger's steps in the same
 * call: beginDelivery-3 on the job fetched, and in moveToFinished, finishDelivery-3 on the job
 * completed first. A delivery then costs one script call and one round trip, as a job of a raw
 * BullMQ worker does, where it cost three calls and two round trips (begin answers before a
 * processor may start, and BullMQ names the next job only in its answer to the last).
 *
 * - moveToActiveAndBegin-11: KEYS and ARGV[1..3] are BullMQ's `moveToActive` ones.
 * - moveToFinishedAndBegin-14: KEYS and ARGV[1..9] are BullMQ's `moveToFinished` ones (which
 *   completes or fails a job and, asked to, fetches the next).
 *
 * After BullMQ's arguments (n = 3 or 9):
 *   ARGV[n+1] the ledger's prefix (recordPrefix of the queue's shard)
 *   ARGV[n+2] lock lifetime, ms   ARGV[n+3] ledger retention, s
 *   ARGV[n+4] the fetched job's try token, unique per call   ARGV[n+5] now, Unix ms
 *   ARGV[n+6] what each prediction status wants: whether it is terminal and the processors
 *             that want it ({@link wantsArgument})
 *   moveToFinished only, when the job it completes ends a delivery (finishDelivery-3's
 *   arguments): ARGV[n+7] prediction id, ARGV[n+8] webhook id, ARGV[n+9] that try's token or
 *   empty, ARGV[n+10] the processor whose success to record or empty, ARGV[n+11] `1` when
 *   terminal
 * Without ARGV[n+1…], the script is BullMQ's alone and answers as it does.
 *
 * With them it answers `{'inlet', begun, finished, BullMQ's answer}`:
 * - `finished`: finishDelivery-3's answer, run before BullMQ's part (as the separate call it
 *   replaces was sent before BullMQ's), or false without a delivery to finish;
 * - `begun`: when BullMQ's answer is a job that is a delivery, beginDelivery-3's answer for it,
 *   else false. A delivery stored by the ingest names its prediction and status in the job's
 *   `inlet:prediction` and `inlet:status` fields (storeDelivery-11), and its webhook id in its
 *   job id; any other job is a delivery when its `data` names a webhook id, a prediction id and
 *   a known status. A job that is not a delivery is decided as before, by the worker calling
 *   beginDelivery-3.
 * Both run with the ledger's keys `<prefix>:prediction:<id>`, `…:lock` and
 * `<prefix>:delivery:<webhook-id>`. They are not among KEYS: the fetched job's are found only
 * here. On a Redis Cluster they share the queue's slot (src/core/shards.ts), as BullMQ's job
 * keys, which its scripts also name from their arguments, do.
 *
 * BullMQ's script is wrapped unchanged, as a local function, as storeDelivery-11 wraps
 * addStandardJob; test/core/scripts/fetch-and-begin.test.ts runs both on the same states. The
 * ledger's parts are the same Lua functions as its own scripts. Safe to resend as those are.
 */
function fetchAndBegin(bullmqName: string, keys: number, argc: number): RedisScript {
  const bullmq = bullmqScript(bullmqName, keys);
  return {
    name: `${bullmqName}AndBegin`,
    numberOfKeys: keys,
    lua: `
local function bullmq(KEYS, ARGV)
${bullmq.content}
end
${BEGIN_DELIVERY_FUNCTION}
${FINISH_DELIVERY_FUNCTION}
-- The ledger's keys of a prediction and one of its deliveries.
local function ledgerKeys(prefix, predictionId, webhookId)
  local prediction = prefix .. ':prediction:' .. predictionId
  return {prediction, prediction .. ':lock', prefix .. ':delivery:' .. webhookId}
end
-- beginDelivery-3 on a job BullMQ fetched, when it is a delivery; else false.
local function begin(fields, jobId, x)
  local data, predictionId, status = '', nil, nil
  for i = 1, #fields - 1, 2 do
    local field = fields[i]
    if field == '${JOB_FIELDS.prediction}' then
      predictionId = fields[i + 1]
    elseif field == '${JOB_FIELDS.status}' then
      status = fields[i + 1]
    elseif field == 'data' then
      data = fields[i + 1]
    end
  end
  local webhookId
  if predictionId and status then
    -- Stored by the ingest (storeDelivery-11), whose job id is the webhook id (jobIdFor).
    webhookId = string.sub(jobId, 1, 1) == '#' and string.sub(jobId, 2) or jobId
  else
    local decoded, job = pcall(cjson.decode, data)
    if not decoded or type(job) ~= 'table' or type(job.prediction) ~= 'table' then
      return false
    end
    webhookId, predictionId, status = job.webhookId, job.prediction.id, job.prediction.status
  end
  if type(webhookId) ~= 'string' or webhookId == '' or type(predictionId) ~= 'string'
    or predictionId == '' or type(status) ~= 'string' then
    return false
  end
  -- Only this status's line of x[6] is decoded; a status that is not a plain word is unknown.
  if not string.find(status, '^%l+$') then return false end
  local at = string.find(x[6], '\\n' .. status .. '=', 1, true)
  if not at then return false end
  local from = at + #status + 2
  local wants = cjson.decode(string.sub(x[6], from, string.find(x[6], '\\n', from, true) - 1))
  local args = {x[4], x[2], x[3], status, wants[1], webhookId, predictionId, x[5]}
  for i = 2, #wants do args[#args + 1] = wants[i] end
  return beginDelivery(ledgerKeys(x[1], predictionId, webhookId), args)
end

local n = ${argc}
local own, x = {}, {}
for i = 1, n do own[i] = ARGV[i] end
for i = n + 1, #ARGV do x[#x + 1] = ARGV[i] end
if #x < 6 then return bullmq(KEYS, own) end
local finished = false
if x[7] then
  finished = finishDelivery(ledgerKeys(x[1], x[7], x[8]), {x[9], x[10], x[11], x[8], x[3]})
end
local result = bullmq(KEYS, own)
local begun = false
if type(result) == 'table' and type(result[1]) == 'table' then
  begun = begin(result[1], result[2], x)
end
return {'inlet', begun, finished, result}`,
  };
}

/**
 * ARGV[n+6] for what each status wants (processor names, `wanted`): one line a status,
 * `<status>=<JSON array: "1" when terminal else "0", then the names>`, each line after a newline
 * and the last followed by one. The script finds the fetched job's status line with a plain
 * search and decodes that line alone, a short array, where decoding the whole took 2.3 µs of
 * Redis's CPU a call; JSON escapes any newline within a name.
 */
export function wantsArgument(wanted: ReadonlyMap<PredictionStatus, readonly string[]>): string {
  let lines = '\n';
  for (const [status, names] of wanted) {
    lines += `${status}=${JSON.stringify([isTerminal(status) ? '1' : '0', ...names])}\n`;
  }
  return lines;
}

/** BullMQ's `moveToActive` arguments after its keys. */
export const MOVE_TO_ACTIVE = { name: 'moveToActive', keys: 11, argc: 3, queueArg: 1 } as const;
/** BullMQ's `moveToFinished` arguments after its keys; ARGV[7] is the queue's key prefix. */
export const MOVE_TO_FINISHED = { name: 'moveToFinished', keys: 14, argc: 9, queueArg: 7 } as const;

export function moveToActiveAndBegin11(): RedisScript {
  return fetchAndBegin(MOVE_TO_ACTIVE.name, MOVE_TO_ACTIVE.keys, MOVE_TO_ACTIVE.argc);
}

export function moveToFinishedAndBegin14(): RedisScript {
  return fetchAndBegin(MOVE_TO_FINISHED.name, MOVE_TO_FINISHED.keys, MOVE_TO_FINISHED.argc);
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    moveToActiveAndBegin(args: Array<string | number | Buffer>): Result<unknown, Context>;
    moveToFinishedAndBegin(args: Array<string | number | Buffer>): Result<unknown, Context>;
  }
}
