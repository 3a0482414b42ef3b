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

  static async start(cpus: string | undefined): Promise<BenchRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-bench-redis-'));
    const server = await RedisServer.start({ dir, ...(cpus ? { cpus } : {}) });
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
