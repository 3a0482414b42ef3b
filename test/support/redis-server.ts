import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/core/free-port.js';

export { freePort };

/**
 * A private `redis-server` on a free port with its own data folder: never the shared 6379.
 * `stop()` kills it (like a crash), `start()` brings it back on the same port and data. AOF with
 * `appendfsync always`, so that a kill loses nothing Redis acknowledged: what a test sees stored
 * after a restart is what was really stored.
 */
export class TestRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'inlet-redis-'));
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly appendfsync: 'always' | 'everysec',
  ) {}

  /**
   * @param options.appendfsync - `everysec` runs as the compose file does (a killed process still
   *   loses nothing acknowledged; a host crash could). @defaultValue `always`
   */
  static async start(options: { appendfsync?: 'always' | 'everysec' } = {}): Promise<TestRedis> {
    const redis = new TestRedis(await freePort(), options.appendfsync ?? 'always');
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        this.appendfsync,
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined); // refused until the server is up: expected here
    for (let i = 0; i < 100; i++) {
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch {
        client.disconnect();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  /** Kills the server at once, as a crash would. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  /** A fresh client for assertions; the caller closes it. */
  client(): Redis {
    const client = new Redis(this.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined); // a test that stops Redis expects refusals
    return client;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
