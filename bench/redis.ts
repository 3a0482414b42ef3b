import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { BenchProcess, freePort } from './processes.js';

/**
 * The bench's private `redis-server` on a free port (never 6379), configured as a user would run
 * it for inlet: AOF on with `everysec` fsync, no RDB snapshots, no eviction.
 */
export class BenchRedis {
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly process: BenchProcess,
  ) {}

  static async start(cpus: string | undefined): Promise<BenchRedis> {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'inlet-bench-redis-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''];
    args.push('--appendonly', 'yes', '--appendfsync', 'everysec');
    args.push('--maxmemory-policy', 'noeviction');
    const child = new BenchProcess('redis-server', 'redis-server', args, {
      logFile: join(dir, 'redis.log'),
      cpus,
    });
    const redis = new BenchRedis(port, dir, child);
    const client = redis.client();
    client.on('error', () => undefined);
    for (let i = 0; ; i++) {
      try {
        await client.ping();
        break;
      } catch (error) {
        if (i > 100 || !child.running) {
          throw new Error(
            `redis-server did not start on port ${port}: ${(error as Error).message}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    client.disconnect();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
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
