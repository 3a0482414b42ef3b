import type { RedisClient } from '../redis.js';

/**
 * A Lua script inlet runs in Redis, as ioredis defines it: sent once by EVALSHA, resent by EVAL
 * when the server does not know it (after a restart). Each lives in its own module of this
 * folder, named `<name>-<number of keys>`, with a header documenting KEYS and ARGV and an
 * augmentation of ioredis's `RedisCommander` that types the command it becomes.
 */
export interface RedisScript {
  /** The command name on the connection (e.g. `beginDelivery`). */
  readonly name: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Defines `scripts` as commands of `redis`; a script already defined there is left alone. */
export function defineScripts(redis: RedisClient, ...scripts: RedisScript[]): void {
  for (const script of scripts) {
    if (script.name in redis) continue;
    redis.defineCommand(script.name, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  }
}
