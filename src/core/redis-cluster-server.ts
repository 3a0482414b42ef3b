import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { ioredis } from './commonjs-packages.js';
import { freePort } from './free-port.js';
import { RedisServer } from './redis-server.js';

const run = promisify(execFile);

/** How a private Redis Cluster is run. */
export interface RedisClusterOptions {
  /** Data folder; each node gets `node-<port>/` in it. */
  dir: string;
  /** @defaultValue 3 */
  masters?: number;
  /** Replicas per master. @defaultValue 1 */
  replicas?: number;
  /**
   * `cluster-node-timeout`: how long a master may not answer before its replica takes over.
   * Short in tests, so that a failover takes a second or two. @defaultValue `1000`
   */
  nodeTimeoutMs?: number;
  /** @defaultValue `'always'` */
  appendfsync?: 'always' | 'everysec';
  /** CPUs to pin every node to with `taskset -c` (the bench). */
  cpus?: string;
}

/** A node of the cluster as `CLUSTER NODES` describes it. */
export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId?: string;
  /** Slot ranges a master serves, e.g. `0-5460`. */
  slots: string[];
  failed: boolean;
}

/**
 * A private Redis Cluster on 127.0.0.1 (3 masters and 3 replicas by default), for the tests and
 * the bench: {@link RedisServer}s started with `--cluster-enabled yes` on free ports (never 6379;
 * each also needs its port + 10000 free, for the cluster bus), joined by
 * `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
 */
export class RedisClusterServer {
  private constructor(
    readonly nodes: RedisServer[],
    private readonly options: RedisClusterOptions,
  ) {}

  static async start(options: RedisClusterOptions): Promise<RedisClusterServer> {
    const masters = options.masters ?? 3;
    const count = masters * (1 + (options.replicas ?? 1));
    const nodeTimeout = String(options.nodeTimeoutMs ?? 1000);
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const port = await freeClusterPort();
        const dir = join(options.dir, `node-${port}`);
        mkdirSync(dir, { recursive: true });
        nodes.push(
          await RedisServer.start({
            dir,
            port,
            appendfsync: options.appendfsync ?? 'always',
            cpus: options.cpus,
            extraArgs: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              join(dir, 'nodes.conf'),
              '--cluster-node-timeout',
              nodeTimeout,
              // A replica always may take over, however long it was cut off from its master.
              '--cluster-replica-validity-factor',
              '0',
              // Replicas sync at once, not after Redis's default 5 s wait for more of them.
              '--repl-diskless-sync-delay',
              '0',
            ],
          }),
        );
      }
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        String(options.replicas ?? 1),
        '--cluster-yes',
      ]);
    } catch (error) {
      await Promise.all(nodes.map((node) => node.crash()));
      const message = (error as Error).message;
      if (/ENOENT/.test(message)) throw new Error('redis-cli is not on PATH: install redis-tools');
      throw error;
    }
    const cluster = new RedisClusterServer(nodes, options);
    await cluster.waitUntilHealthy();
    return cluster;
  }

  /** Seed URLs for `REDIS_URL` with `REDIS_CLUSTER=1`: every node, comma-separated. */
  get url(): string {
    return this.nodes.map((node) => node.url).join(',');
  }

  get dir(): string {
    return this.options.dir;
  }

  node(port: number): RedisServer {
    const node = this.nodes.find((candidate) => candidate.port === port);
    if (!node) throw new Error(`no node on port ${port}`);
    return node;
  }

  /** A plain connection to one node, for `CLUSTER` commands; the caller closes it. */
  connect(port: number): Redis {
    const client = new ioredis.Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    return client;
  }

  /** The topology as a running node sees it. */
  async topology(): Promise<ClusterNode[]> {
    for (const server of this.nodes.filter((node) => node.running)) {
      const client = this.connect(server.port);
      try {
        return parseClusterNodes(String(await client.cluster('NODES')));
      } catch {
        // this node does not answer: ask the next one
      } finally {
        client.disconnect();
      }
    }
    throw new Error('no node of the cluster answers');
  }

  /** The master serving `slot`, and its replicas. */
  async ownerOf(slot: number): Promise<{ master: ClusterNode; replicas: ClusterNode[] }> {
    const nodes = await this.topology();
    const master = nodes.find(
      (node) => node.role === 'master' && !node.failed && node.slots.some((r) => inRange(r, slot)),
    );
    if (!master) throw new Error(`no master serves slot ${slot}`);
    return { master, replicas: nodes.filter((node) => node.masterId === master.id) };
  }

  /**
   * Moves `slot` to the master on `toPort` as `redis-cli --cluster reshard` does, key batch by
   * key batch: IMPORTING/MIGRATING, `MIGRATE` of `batch` keys at a time (clients meanwhile get
   * `ASK` and `TRYAGAIN`), then `SETSLOT … NODE` on every master. `onBatch` runs between batches.
   */
  async migrateSlot(
    slot: number,
    toPort: number,
    options: { batch?: number; onBatch?: () => Promise<void> } = {},
  ): Promise<number> {
    const { master: from } = await this.ownerOf(slot);
    const nodes = await this.topology();
    const to = nodes.find((node) => node.port === toPort && node.role === 'master');
    if (!to) throw new Error(`no master on port ${toPort}`);
    if (to.id === from.id) return 0;
    const source = this.connect(from.port);
    const target = this.connect(to.port);
    let moved = 0;
    try {
      await target.cluster('SETSLOT', slot, 'IMPORTING', from.id);
      await source.cluster('SETSLOT', slot, 'MIGRATING', to.id);
      for (;;) {
        const keys = (await source.cluster('GETKEYSINSLOT', slot, options.batch ?? 10)) as string[];
        if (keys.length === 0) break;
        await source.migrate('127.0.0.1', to.port, '', 0, 5000, 'REPLACE', 'KEYS', ...keys);
        moved += keys.length;
        await options.onBatch?.();
      }
      await target.cluster('SETSLOT', slot, 'NODE', to.id);
      await source.cluster('SETSLOT', slot, 'NODE', to.id);
      for (const master of nodes.filter((node) => node.role === 'master' && !node.failed)) {
        if (master.id === to.id || master.id === from.id) continue;
        const other = this.connect(master.port);
        await other.cluster('SETSLOT', slot, 'NODE', to.id).finally(() => other.disconnect());
      }
    } finally {
      source.disconnect();
      target.disconnect();
    }
    return moved;
  }

  /**
   * Resolves once every running node says `cluster_state:ok` and agrees on the masters, and every
   * replica has finished its initial sync (before that, `WAIT` counts it out).
   */
  async waitUntilHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.healthy()) return;
      if (Date.now() > deadline) throw new Error(`cluster not healthy within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async healthy(): Promise<boolean> {
    const running = this.nodes.filter((node) => node.running);
    const views = await Promise.all(
      running.map(async (server) => {
        const client = this.connect(server.port);
        try {
          const info = String(await client.cluster('INFO'));
          if (!/cluster_state:ok/.test(info)) return undefined;
          const replication = String(await client.info('replication'));
          if (/^slave\d+:.*state=(?!online)/m.test(replication)) return undefined;
          if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) {
            return undefined;
          }
          const nodes = parseClusterNodes(String(await client.cluster('NODES')));
          return nodes
            .filter((node) => node.role === 'master' && !node.failed && node.slots.length > 0)
            .map((node) => node.id)
            .sort()
            .join(',');
        } catch {
          return undefined;
        } finally {
          client.disconnect();
        }
      }),
    );
    return views.every((view) => view !== undefined && view === views[0]);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.crash()));
  }
}

/** Parses `CLUSTER NODES`. */
export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line.split(' ');
      const port = Number(address.split('@')[0]?.split(':')[1]);
      const flagList = flags.split(',');
      const replica = flagList.includes('slave');
      return {
        id,
        port,
        role: replica ? 'replica' : 'master',
        masterId: replica && master !== '-' ? master : undefined,
        slots: slots.filter((slot) => /^\d+(-\d+)?$/.test(slot)),
        failed: flagList.includes('fail') || flagList.includes('fail?'),
      } satisfies ClusterNode;
    });
}

function inRange(range: string, slot: number): boolean {
  const [from, to = from] = range.split('-').map(Number) as [number, number?];
  return slot >= from && slot <= to;
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await canBind(port + 10_000))) return port;
  }
}

async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => Promise.reject(error)),
    ]);
    await new Promise((done) => server.close(done));
    return true;
  } catch {
    return false;
  }
}
