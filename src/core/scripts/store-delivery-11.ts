import type { Result } from 'ioredis';
import { JOB_FIELDS } from '../job.js';
import { bullmqScript } from './bullmq-script.js';
import type { RedisScript } from './redis-script.js';

/** How many keys BullMQ's addStandardJob takes; storeDelivery's first keys are those. */
export const BULLMQ_ADD_KEYS = 9;
/** How many arguments it takes; storeDelivery's first arguments are those. */
const BULLMQ_ADD_ARGS = 3;

/**
 * storeDelivery-11: stores a delivery once per `webhook-id`, atomically, in one round trip.
 *   KEYS[1..9]  BullMQ's addStandardJob keys (wait, paused, meta, id, completed, delayed,
 *               active, events, marker)
 *   KEYS[10]    `<prefix>:seen:<webhook-id>`, set to `s` for the de-duplication window
 *   KEYS[11]    the BullMQ job hash of that id
 *   ARGV[1..3]  BullMQ's addStandardJob arguments (packed args, job data, packed options)
 *   ARGV[4]     the de-duplication window, seconds
 *   ARGV[5]     the prediction's id   ARGV[6] its status
 * Returns 1 (stored now), 0 (stored before: a duplicate) or BullMQ's negative error code.
 *
 * The job's hash also gets `inlet:prediction` and `inlet:status` (ARGV[5], ARGV[6]), which
 * BullMQ does not read: the worker's fetch script (fetch-and-begin.ts) finds the ledger's keys
 * from them without decoding the job's data: 8-12 µs less Redis CPU a delivery in worker rounds
 * (CHANGELOG).
 *
 * BullMQ's script is wrapped, unchanged, as a local function handed KEYS and ARGV as they are (it
 * reads only its own 9 and 3, which {@link bullmqScript} checks; copying them into tables of
 * their own cost Redis about 7,000 instructions a store). A delivery stored before has its
 * de-duplication mark or its job, so one `EXISTS` of both answers whether it is new (the mark is
 * only ever `s`). The check, the add and the mark are one script, so Redis runs them with
 * nothing in between. Two requests with the same id, in one process or in two, cannot both store
 * it, and the second is told `duplicate` only once the first has stored it. The mark is written
 * last: an add that fails leaves no mark, so the sender's retry is never a false `duplicate`. A
 * resend of a call that stored the job answers 0: still a 2xx, still true.
 */
export function storeDelivery11(): RedisScript {
  const addStandardJob = bullmqScript('addStandardJob', BULLMQ_ADD_KEYS, BULLMQ_ADD_ARGS);
  return {
    name: 'storeDelivery',
    numberOfKeys: BULLMQ_ADD_KEYS + 2,
    lua: `
local function bullmqAdd(KEYS, ARGV)
${addStandardJob.content}
end
if redis.call('EXISTS', KEYS[10], KEYS[11]) > 0 then return 0 end
local added = bullmqAdd(KEYS, ARGV)
if type(added) == 'number' and added < 0 then return added end
redis.call('HSET', KEYS[11], '${JOB_FIELDS.prediction}', ARGV[5], '${JOB_FIELDS.status}', ARGV[6])
redis.call('SET', KEYS[10], 's', 'EX', ARGV[4])
return 1`,
  };
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    storeDelivery(...keysAndArgs: Array<string | Buffer | number>): Result<number, Context>;
  }
}
