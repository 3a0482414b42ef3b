import { Redis, type RedisOptions } from 'ioredis';

/**
 * How a connection behaves when Redis is away.
 * - `fail-fast`: the ingest's. Commands fail at once while disconnected and time out after
 *   `commandTimeoutMs`, so a sender gets a 503 within about a second instead of a hung request.
 *   Commands issued in the same tick share one write (auto-pipelining).
 * - `patient`: workers' and tools'. Commands wait for the reconnect, as BullMQ workers require.
 */
export type ConnectionRole = 'fail-fast' | 'patient';

export interface ConnectionOptions {
  role: ConnectionRole;
  /** Per-command deadline for `fail-fast`. @defaultValue `1000` */
  commandTimeoutMs?: number;
  /** Name shown by `CLIENT LIST`, e.g. `inlet:ingest`. */
  name?: string;
}

/** Opens an ioredis connection to `url` set up for its role; it connects in the background. */
export function createRedis(url: string, options: ConnectionOptions): Redis {
  const common: RedisOptions = {
    connectionName: options.name,
    // Reconnect for ever, backing off to 2 s: Redis coming back must bring inlet back.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    lazyConnect: false,
  };
  const roleOptions: RedisOptions =
    options.role === 'fail-fast'
      ? {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          commandTimeout: options.commandTimeoutMs ?? 1000,
          enableAutoPipelining: true,
        }
      : { maxRetriesPerRequest: null, enableOfflineQueue: true };
  return new Redis(url, { ...common, ...roleOptions });
}

/**
 * Closes a connection politely, or drops it when Redis is not there to answer QUIT.
 * @param quitTimeoutMs - how long to wait for QUIT's answer; 0 drops at once. @defaultValue `1000`
 */
export async function closeRedis(redis: Redis, quitTimeoutMs = 1000): Promise<void> {
  if (redis.status === 'end') return;
  try {
    if (redis.status === 'ready' && quitTimeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        redis.quit(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, quitTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
  } catch {
    // QUIT failed: the connection is going away anyway.
  }
  redis.disconnect(false);
}
