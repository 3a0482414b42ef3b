import type { Result } from 'ioredis';
import { JOB_FIELDS } from '../job.js';
import { isTerminal, type PredictionStatus } from '../prediction.js';
import { BEGIN_DELIVERY_FUNCTION } from './begin-delivery-3.js';
import { bullmqScript } from './bullmq-script.js';
import { FINISH_DELIVERY_FUNCTION } from './finish-delivery-3.js';
import type { RedisScript } from './redis-script.js';

/** What the fetch scripts of one worker configuration are built with. */
export interface FetchLedgerSettings {
  /** Lifetime of the prediction lock without renewal, ms. */
  lockTtlMs: number;
  /** How long ledger entries outlive their last write, s. */
  retentionSeconds: number;
  /** The processors that want each status, by name. */
  wanted: ReadonlyMap<PredictionStatus, readonly string[]>;
}

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
 * What does not change from one call to the next is written into the script itself, from
 * `settings` (the lock's lifetime, the ledger's retention, which processors want each status):
 * each argument of a call costs Redis about 2,000 instructions to read and hand to Lua, and
 * finding a status in a table the script builds costs less than decoding it from an argument.
 * A worker configuration therefore has scripts of its own (their SHA differs).
 *
 * After BullMQ's arguments (n = 3 or 9):
 *   ARGV[n+1] the ledger's prefix (recordPrefix of the queue's shard)
 *   ARGV[n+2] the fetched job's try token, unique per call
 *   moveToFinished only, when the job it completes ends a delivery (finishDelivery-3's
 *   arguments): ARGV[n+3] prediction id, ARGV[n+4] webhook id, ARGV[n+5] that try's token or
 *   empty, ARGV[n+6] the processor whose success to record or empty, ARGV[n+7] `1` when
 *   terminal
 * Without ARGV[n+1…], the script is BullMQ's alone and answers as it does. BullMQ's part is
 * handed ARGV as it is: it reads ARGV[1..n] only ({@link bullmqScript} checks that), and copying
 * those into a table of their own cost about 16,000 instructions a call.
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
function fetchAndBegin(
  bullmqName: string,
  keys: number,
  argc: number,
  settings: FetchLedgerSettings,
): RedisScript {
  const bullmq = bullmqScript(bullmqName, keys, argc);
  return {
    name: `${bullmqName}AndBegin`,
    numberOfKeys: keys,
    lua: `
local function bullmq(KEYS, ARGV)
${bullmq.content}
end
${BEGIN_DELIVERY_FUNCTION}
${FINISH_DELIVERY_FUNCTION}
local LOCK_TTL, RETENTION = '${settings.lockTtlMs}', '${settings.retentionSeconds}'
${wantsFunction(settings.wanted)}
-- beginDelivery-3 or finishDelivery-3 with the ledger's keys of a prediction and a delivery.
local function withKeys(step, prefix, predictionId, webhookId, args)
  local prediction = prefix .. ':prediction:' .. predictionId
  return step(prediction, prediction .. ':lock', prefix .. ':delivery:' .. webhookId, args)
end
-- beginDelivery-3 on a job BullMQ fetched, when it is a delivery; else false.
local function begin(fields, jobId, prefix, token)
  local predictionId, status, webhookId
  for i = 1, #fields - 1, 2 do
    local field = fields[i]
    if field == '${JOB_FIELDS.prediction}' then
      predictionId = fields[i + 1]
      if status then break end
    elseif field == '${JOB_FIELDS.status}' then
      status = fields[i + 1]
      if predictionId then break end
    end
  end
  if predictionId and status then
    -- Stored by the ingest (storeDelivery-11), whose job id is the webhook id (jobIdFor).
    webhookId = string.sub(jobId, 1, 1) == '#' and string.sub(jobId, 2) or jobId
  else
    local data = ''
    for i = 1, #fields - 1, 2 do
      if fields[i] == 'data' then data = fields[i + 1] end
    end
    local decoded, job = pcall(cjson.decode, data)
    if not decoded or type(job) ~= 'table' or type(job.prediction) ~= 'table' then
      return false
    end
    webhookId, predictionId, status = job.webhookId, job.prediction.id, job.prediction.status
    if type(webhookId) ~= 'string' or type(predictionId) ~= 'string'
      or type(status) ~= 'string' then
      return false
    end
  end
  if webhookId == '' or predictionId == '' then return false end
  local args = wants(status)
  if not args then return false end
  args[1], args[4], args[6], args[7] = token, status, webhookId, predictionId
  return withKeys(beginDelivery, prefix, predictionId, webhookId, args)
end

local n = ${argc}
if not ARGV[n + 2] then return bullmq(KEYS, ARGV) end
local prefix = ARGV[n + 1]
local finished = false
if ARGV[n + 3] then
  local webhookId = ARGV[n + 4]
  finished = withKeys(finishDelivery, prefix, ARGV[n + 3], webhookId,
    {ARGV[n + 5], ARGV[n + 6], ARGV[n + 7], webhookId, RETENTION})
end
local result = bullmq(KEYS, ARGV)
local begun = false
if type(result) == 'table' and type(result[1]) == 'table' then
  begun = begin(result[1], result[2], prefix, ARGV[n + 2])
end
return {'inlet', begun, finished, result}`,
  };
}

/**
 * The Lua function `wants(status)` of the fetch scripts: for a known status, a new
 * beginDelivery-3 argument list with the lock lifetime, the retention, whether the status is
 * terminal and the names of the processors that want it in place, the rest for the caller to
 * fill in; nil for any other status. Names are written as Lua strings byte by byte, so that no
 * name can end its string early.
 */
function wantsFunction(wanted: ReadonlyMap<PredictionStatus, readonly string[]>): string {
  const lines = ['local function wants(status)'];
  for (const [status, names] of wanted) {
    const terminal = isTerminal(status) ? "'1'" : "'0'";
    const list = [
      'false, LOCK_TTL, RETENTION, false',
      terminal,
      'false, false',
      ...names.map(luaString),
    ].join(', ');
    lines.push(`  if status == ${luaString(status)} then return {${list}} end`);
  }
  lines.push('  return nil', 'end');
  return lines.join('\n');
}

/** `text` as a Lua string literal: letters, digits and `_:.-/` as they are, other bytes escaped. */
export function luaString(text: string): string {
  let literal = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    literal += /[\w:./-]/.test(char) ? char : `\\${String(byte).padStart(3, '0')}`;
  }
  return `${literal}"`;
}

/** BullMQ's `moveToActive` arguments after its keys. */
export const MOVE_TO_ACTIVE = { name: 'moveToActive', keys: 11, argc: 3, queueArg: 1 } as const;
/** BullMQ's `moveToFinished` arguments after its keys; ARGV[7] is the queue's key prefix. */
export const MOVE_TO_FINISHED = { name: 'moveToFinished', keys: 14, argc: 9, queueArg: 7 } as const;

export function moveToActiveAndBegin11(settings: FetchLedgerSettings): RedisScript {
  const { name, keys, argc } = MOVE_TO_ACTIVE;
  return fetchAndBegin(name, keys, argc, settings);
}

export function moveToFinishedAndBegin14(settings: FetchLedgerSettings): RedisScript {
  const { name, keys, argc } = MOVE_TO_FINISHED;
  return fetchAndBegin(name, keys, argc, settings);
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    moveToActiveAndBegin(args: Array<string | number | Buffer>): Result<unknown, Context>;
    moveToFinishedAndBegin(args: Array<string | number | Buffer>): Result<unknown, Context>;
  }
}
