import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, redactUrl } from '../core/config.js';
import { STATE_DIR } from './dev-secret.js';

/**
 * Which Redis a command talks to, and why: `REDIS_URL` when set; else the private Redis of an
 * `inlet dev` running in the same folder (it writes `.inlet/redis.json` while it runs); else the
 * default, 127.0.0.1:6379.
 */
export interface RedisTarget {
  url: string;
  /** Why this one, for the line every Redis command prints. */
  source: string;
}

/** What `inlet dev` writes while its private Redis runs. */
interface DevRedisRecord {
  url: string;
  devPid: number;
}

function recordPath(cwd: string): string {
  return join(cwd, STATE_DIR, 'redis.json');
}

/** Written by `inlet dev` once its private Redis is up. */
export function writeDevRedisRecord(url: string, cwd = process.cwd()): void {
  const record: DevRedisRecord = { url, devPid: process.pid };
  writeFileSync(recordPath(cwd), `${JSON.stringify(record)}\n`);
}

/** Removed by `inlet dev` when it stops, and only if it is still its own. */
export function removeDevRedisRecord(cwd = process.cwd()): void {
  if (readDevRedisRecord(cwd)?.devPid === process.pid) rmSync(recordPath(cwd), { force: true });
}

/** The record of a live `inlet dev` in `cwd`; a killed one's leftover record is ignored. */
export function readDevRedisRecord(cwd = process.cwd()): DevRedisRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(recordPath(cwd), 'utf8')) as DevRedisRecord;
    if (typeof record.url !== 'string' || !Number.isInteger(record.devPid)) return undefined;
    process.kill(record.devPid, 0); // throws when that process is gone
    return record;
  } catch {
    return undefined;
  }
}

/** The Redis for a command run in `cwd`, with `config` loaded from the environment. */
export function redisTarget(config: Config, cwd = process.cwd()): RedisTarget {
  if (process.env.REDIS_URL?.trim() || process.env.REDIS_URL_FILE) {
    return { url: config.REDIS_URL, source: 'REDIS_URL' };
  }
  const dev = existsSync(recordPath(cwd)) ? readDevRedisRecord(cwd) : undefined;
  if (dev) {
    return {
      url: dev.url,
      source: `the private Redis of the inlet dev running here (pid ${dev.devPid})`,
    };
  }
  return { url: config.REDIS_URL, source: 'the default; set REDIS_URL for another' };
}

/** The one line a Redis command prints first, on stderr: which Redis, and why. */
export function announceRedis(target: RedisTarget): void {
  process.stderr.write(`inlet: Redis ${redactUrl(target.url)} (${target.source})\n`);
}
