import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisServer } from '../src/core/redis-server.js';

/**
 * The bench's private `redis-server` (src/core/redis-server.ts) on a free port (never 6379),
 * configured as a user would run it for inlet: AOF on with `everysec` fsync, no RDB snapshots,
 * no eviction. An unexpected exit fails the run.
 */
export class BenchRedis {
  private constructor(readonly process: RedisServer) {}

  /**
   * @param cpus - the CPUs Redis is pinned to, if any.
   * @param forkCpus - where its AOF rewrites run, if it is pinned: a forked child inherits the
   *   parent's CPUs, and a rewrite pinned beside Redis took half of Redis's core. Seen once each
   *   on a 2-core host at 1,000 deliveries/s end-to-end: pinned with Redis, deliveries fell 0.6 s
   *   behind and took 5 s to catch up; on either core, 0.3 s and 2.5 s.
   */
  static async start(cpus: string | undefined, forkCpus?: string): Promise<BenchRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-bench-redis-'));
    const server = await RedisServer.start({
      dir,
      ...(cpus ? { cpus } : {}),
      ...(cpus && forkCpus ? { extraArgs: ['--aof_rewrite_cpulist', forkCpus] } : {}),
    });
    server.onUnexpectedExit(({ code, signal, lastLogLine }) => {
      globalThis.process.stderr.write(
        `bench: redis-server exited unexpectedly (${signal ?? code}: ${lastLogLine}); see ${server.logFile}\n`,
      );
      globalThis.process.exitCode = 1;
    });
    return new BenchRedis(server);
  }

  get port(): number {
    return this.process.port;
  }

  get dir(): string {
    return this.process.dir;
  }

  get url(): string {
    return this.process.url;
  }

  /** A client for the bench's own reads and writes; the caller disconnects it. */
  client(): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  }

  async destroy(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A numeric field of Redis's `INFO persistence` (e.g. `aof_rewrites`); NaN when it has none. */
export async function persistenceField(redis: Redis, name: string): Promise<number> {
  const info = await redis.info('persistence');
  return Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? Number.NaN);
}

/**
 * Rewrites Redis's AOF now and waits until the rewrite is done (at most `timeoutMs`), so that a
 * part of the bench starts from a compact log: the rounds before it grow the AOF, and a rewrite
 * that the growth sets off would otherwise fall in that part's measured seconds.
 */
export async function compactAof(redis: Redis, timeoutMs = 60_000): Promise<void> {
  const before = await persistenceField(redis, 'aof_rewrites');
  if (Number.isNaN(before)) return; // a Redis that reports no rewrites
  await redis.bgrewriteaof().catch(() => undefined); // already running: wait for that one
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const running =
      (await persistenceField(redis, 'aof_rewrite_in_progress')) === 1 ||
      (await persistenceField(redis, 'aof_rewrite_scheduled')) === 1;
    if (!running && (await persistenceField(redis, 'aof_rewrites')) > before) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
