import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { ioredis } from '../../src/core/commonjs-packages.js';
import { freePort } from '../../src/core/free-port.js';
import { StoppingCluster } from '../../src/core/redis.js';
import { RedisClusterServer } from '../../src/core/redis-cluster-server.js';
import { RedisServer } from '../../src/core/redis-server.js';

export { freePort };

/**
 * How many times Redis has read from its clients' sockets so far (`INFO stats`), asked on
 * `client`: the difference over a few commands tells whether they left in one write.
 */
export async function socketReads(client: Redis): Promise<number> {
  const stats = await client.info('stats');
  return Number(/total_reads_processed:(\d+)/.exec(stats)?.[1]);
}

/**
 * Counts the writes `client`'s socket hands to the operating system from now on (Node's
 * `_write` and `_writev`, one call each however many chunks it carries), until `stop()`. Unlike
 * {@link socketReads}, this does not depend on when Redis gets to read.
 */
export function countSocketWrites(client: Redis): { count: () => number; stop: () => void } {
  type Writes = { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
  const socket = client.stream as unknown as Writes;
  const own = { _write: socket._write, _writev: socket._writev };
  let count = 0;
  socket._write = (...args) => {
    count++;
    own._write.apply(socket, args);
  };
  socket._writev = (...args) => {
    count++;
    own._writev.apply(socket, args);
  };
  return {
    count: () => count,
    stop: () => {
      socket._write = own._write;
      socket._writev = own._writev;
    },
  };
}

/**
 * A test's private `redis-server` (src/core/redis-server.ts) on a free port with its own data
 * folder: never the shared 6379. `stop()` kills it (like a crash), `start()` brings it back on
 * the same port and data. AOF with `appendfsync always`, so that a kill loses nothing Redis
 * acknowledged: what a test sees stored after a restart is what was really stored.
 */
export class TestRedis {
  private constructor(private readonly server: RedisServer) {}

  /**
   * @param options.appendfsync - `everysec` runs as the compose file does (a killed process still
   *   loses nothing acknowledged; a host crash could). @defaultValue `always`
   */
  static async start(options: { appendfsync?: 'always' | 'everysec' } = {}): Promise<TestRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-redis-'));
    const appendfsync = options.appendfsync ?? 'always';
    return new TestRedis(await RedisServer.start({ dir, appendfsync }));
  }

  get port(): number {
    return this.server.port;
  }

  get url(): string {
    return this.server.url;
  }

  get dir(): string {
    return this.server.dir;
  }

  /** Starts it again on the same port and data, after {@link stop}. */
  start(): Promise<void> {
    return this.server.start();
  }

  /** Kills the server at once, as a crash would. */
  stop(): Promise<void> {
    return this.server.crash();
  }

  /** Stops the server's process (SIGSTOP): connections stay open, nothing is answered. */
  freeze(): void {
    this.server.freeze();
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    this.server.thaw();
  }

  /** A fresh client for assertions; the caller closes it. */
  client(): Redis {
    const client = new ioredis.Redis(this.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined); // a test that stops Redis expects refusals
    return client;
  }

  async destroy(): Promise<void> {
    await this.server.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A test's private Redis Cluster (src/core/redis-cluster-server.ts): 3 masters and (unless told
 * otherwise) 3 replicas on free ports, a node timeout of 1 s so that a failover takes a second or
 * two. `url` is the seed list for `REDIS_URL` with `REDIS_CLUSTER=1`.
 */
export class TestRedisCluster {
  private constructor(readonly server: RedisClusterServer) {}

  /** @param options.replicas - replicas per master; 0 when a test needs no failover or WAIT. */
  static async start(
    options: { nodeTimeoutMs?: number; replicas?: number } = {},
  ): Promise<TestRedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-redis-cluster-'));
    return new TestRedisCluster(await RedisClusterServer.start({ dir, ...options }));
  }

  get url(): string {
    return this.server.url;
  }

  /**
   * A cluster client for assertions; the caller closes it. inlet's own Cluster class, whose
   * closing cannot leave a slot-refresh timer that keeps the test's process alive.
   */
  client(): Cluster {
    const client = new StoppingCluster(
      this.server.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    client.on('error', () => undefined);
    return client;
  }

  async destroy(): Promise<void> {
    await this.server.destroy();
    rmSync(this.server.dir, { recursive: true, force: true });
  }
}
