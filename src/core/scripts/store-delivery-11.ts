import { createRequire } from 'node:module';
import type { Result } from 'ioredis';
import type { RedisScript } from './redis-script.js';

/**
 * The one BullMQ version whose private `addStandardJob` script storeDelivery wraps. package.json
 * pins bullmq to exactly this version; {@link storeDelivery11} refuses any other, and
 * test/core/scripts/store-delivery.test.ts compares a job stored this way with one stored by
 * `Queue.add`, field by field, so that an upgrade is a deliberate, tested change.
 */
export const BULLMQ_VERSION = '6.7.0';

/** BullMQ's Lua for adding a job, as its Redis backend sends it (keys: 9, then 3 ARGV). */
interface BullmqScript {
  name: string;
  content: string;
  keys: number;
}

const require = createRequire(import.meta.url);

/**
 * BullMQ's own add script, of the installed version, checked. BullMQ does not export its
 * scripts from the package main; the CommonJS build is the one Node loads for `bullmq`, so this is
 * the very script `Queue.add` runs. Throws one line saying what is wrong and what to do.
 */
export function bullmqAddStandardJob(): BullmqScript {
  const { version } = require('bullmq/dist/cjs/version.js') as { version: string };
  if (version !== BULLMQ_VERSION) {
    throw new Error(
      `bullmq ${version} is installed but inlet needs exactly ${BULLMQ_VERSION} (it wraps BullMQ's addStandardJob script): run npm ci, or install inlet-webhooks without overriding bullmq`,
    );
  }
  const { addStandardJob } = require('bullmq/dist/cjs/scripts/addStandardJob-9.js') as {
    addStandardJob: BullmqScript;
  };
  if (addStandardJob?.keys !== 9 || typeof addStandardJob.content !== 'string') {
    throw new Error(`bullmq ${version}: its addStandardJob script is not the one inlet wraps`);
  }
  return addStandardJob;
}

/** How many keys BullMQ's addStandardJob takes; storeDelivery's first keys are those. */
export const BULLMQ_ADD_KEYS = 9;

/**
 * storeDelivery-11: stores a delivery once per `webhook-id`, atomically, in one round trip.
 *   KEYS[1..9]  BullMQ's addStandardJob keys (wait, paused, meta, id, completed, delayed,
 *               active, events, marker)
 *   KEYS[10]    `<prefix>:seen:<webhook-id>`, set to `s` for the de-duplication window
 *   KEYS[11]    the BullMQ job hash of that id
 *   ARGV[1..3]  BullMQ's addStandardJob arguments (packed args, job data, packed options)
 *   ARGV[4]     the de-duplication window, seconds
 * Returns 1 (stored now), 0 (stored before: a duplicate) or BullMQ's negative error code.
 *
 * BullMQ's script is wrapped, unchanged, as a local function: the check, the add and the mark are
 * one script, so Redis runs them with nothing in between. Two requests with the same id, in one
 * process or in two, cannot both store it, and the second is told `duplicate` only once the first
 * has stored it. The mark is written last: an add that fails leaves no mark, so the sender's
 * retry is never a false `duplicate`. A resend of a call that stored the job answers 0: still a
 * 2xx, still true.
 */
export function storeDelivery11(): RedisScript {
  const addStandardJob = bullmqAddStandardJob();
  return {
    name: 'storeDelivery',
    numberOfKeys: BULLMQ_ADD_KEYS + 2,
    lua: `
local function bullmqAdd(KEYS, ARGV)
${addStandardJob.content}
end
if redis.call('GET', KEYS[10]) == 's' or redis.call('EXISTS', KEYS[11]) == 1 then return 0 end
local added = bullmqAdd(
  {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]},
  {ARGV[1], ARGV[2], ARGV[3]})
if type(added) == 'number' and added < 0 then return added end
redis.call('SET', KEYS[10], 's', 'EX', ARGV[4])
return 1`,
  };
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    storeDelivery(...keysAndArgs: Array<string | Buffer | number>): Result<number, Context>;
  }
}
