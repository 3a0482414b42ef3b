import type { Callback, Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { ioredis } from './commonjs-packages.js';

/**
 * A connection to a single Redis or to a Redis Cluster (ioredis's `Cluster`, which routes each
 * command to the master of its key's slot and follows `MOVED`/`ASK` and failovers). Both have the
 * same commands, scripts, MULTI and pipelines; a MULTI or a script must keep to one slot.
 */
export type RedisClient = Redis | Cluster;

/**
 * How a connection behaves when Redis is away.
 * - `fail-fast`: the ingest's. Commands fail at once while disconnected and time out after
 *   `commandTimeoutMs`, so that nothing waits on a hung Redis for ever (the ingest's route also
 *   keeps its own, shorter deadline per store: a sender gets a 503, not a hung request).
 *   The ingest groups its stores into one write per node and tick with
 *   {@link corkUntilImmediate}.
 * - `patient`: workers' and tools'. Commands wait for the reconnect, as BullMQ workers require.
 */
export type ConnectionRole = 'fail-fast' | 'patient';

export interface ConnectionOptions {
  role: ConnectionRole;
  /** Per-command deadline for `fail-fast`. @defaultValue `1000` */
  commandTimeoutMs?: number;
  /** Name shown by `CLIENT LIST`, e.g. `inlet:ingest`. */
  name?: string;
  /**
   * `url` is a comma-separated list of a Redis Cluster's seed nodes (`REDIS_CLUSTER=1`).
   * @defaultValue `false`
   */
  cluster?: boolean;
}

/** The connection inlet's configuration names: `REDIS_URL`, a cluster when `REDIS_CLUSTER=1`. */
export function connectRedis(
  config: { REDIS_URL: string; REDIS_CLUSTER: boolean },
  options: Omit<ConnectionOptions, 'cluster'>,
): RedisClient {
  return createRedis(config.REDIS_URL, { ...options, cluster: config.REDIS_CLUSTER });
}

/** Opens an ioredis connection to `url` set up for its role; it connects in the background. */
export function createRedis(url: string, options: ConnectionOptions & { cluster: true }): Cluster;
export function createRedis(url: string, options: ConnectionOptions & { cluster?: false }): Redis;
export function createRedis(url: string, options: ConnectionOptions): RedisClient;
export function createRedis(url: string, options: ConnectionOptions): RedisClient {
  if (options.cluster) return createCluster(url, options);
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
        }
      : { maxRetriesPerRequest: null, enableOfflineQueue: true };
  return new ioredis.Redis(url, { ...common, ...roleOptions });
}

/** Connections held by {@link corkUntilImmediate} until the event loop's next check phase. */
const corked = new WeakSet<RedisClient>();

/**
 * Holds `redis`'s writes until the event loop's check phase (`setImmediate`), so that the
 * commands sent in this turn of the loop (the stores of every request parsed in it, or a
 * delivery's end and BullMQ's completion of its job) leave in one write, which Redis reads once.
 * On a cluster, every master's connection is held, each command still going to its own node.
 * Each command keeps its own reply: unlike ioredis's auto-pipelining, which sends one pipeline
 * at a time and queues everything else behind it, a command waits for nothing but its turn.
 * Under load that queue kept each store's objects alive across collections: the ingest promoted
 * about 2.5 KB a request to the old space and peaked at 182 MB RSS, against 123–128 MB corked.
 * A connection that is not ready is left alone (its commands fail or wait as its role says).
 */
export function corkUntilImmediate(redis: RedisClient): void {
  if (corked.has(redis)) return;
  const streams = (redis instanceof ioredis.Cluster ? redis.nodes('master') : [redis])
    .filter((node) => node.status === 'ready' && !node.stream.destroyed)
    .map((node) => node.stream);
  if (streams.length === 0) return;
  corked.add(redis);
  for (const stream of streams) stream.cork();
  setImmediate(() => {
    corked.delete(redis);
    for (const stream of streams) stream.uncork();
  });
}

/**
 * Resolves once every connection is ready, or after `timeoutMs`, whichever comes first: true
 * when all were ready. Never rejects; a connection that cannot connect keeps trying as its role
 * says.
 */
export function whenReady(clients: RedisClient[], timeoutMs: number): Promise<boolean> {
  const pending = clients.filter((client) => client.status !== 'ready');
  if (pending.length === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    let waiting = pending.length;
    const onReady = () => {
      waiting -= 1;
      if (waiting === 0) finish(true);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (ready: boolean) => {
      clearTimeout(timer);
      for (const client of pending) client.off('ready', onReady);
      resolve(ready);
    };
    for (const client of pending) client.once('ready', onReady);
  });
}

/**
 * Closes a connection politely, or drops it when Redis is not there to answer QUIT.
 * @param quitTimeoutMs - how long to wait for QUIT's answer; 0 drops at once. @defaultValue `1000`
 */
export async function closeRedis(redis: RedisClient, quitTimeoutMs = 1000): Promise<void> {
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

/**
 * A Redis Cluster client with the same role semantics as a single connection. `fail-fast`: no
 * offline queue (a command with no ready master for its slot fails at once), the per-command
 * deadline on every node connection (ioredis starts it at the first send, so redirects and
 * failover retries stay inside it), no resend. `patient`: commands wait, in the cluster's offline
 * queue, for the cluster to come back, as BullMQ workers need. Both refresh the slot map on
 * `MOVED` and follow `ASK` during a reshard.
 */
function createCluster(list: string, options: ConnectionOptions): Cluster {
  const urls = list.split(',').map((url) => new URL(url.trim()));
  const first = urls[0] as URL;
  const nodes = urls.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) }));
  const redisOptions: ClusterOptions['redisOptions'] = {
    connectionName: options.name,
    username: first.username ? decodeURIComponent(first.username) : undefined,
    password: first.password ? decodeURIComponent(first.password) : undefined,
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
    ...(options.role === 'fail-fast'
      ? {
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          commandTimeout: options.commandTimeoutMs ?? 1000,
        }
      : { maxRetriesPerRequest: null }),
  };
  const common: ClusterOptions = {
    redisOptions,
    // Reconnect for ever, backing off to 2 s, as a single connection does.
    clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    // A failover takes the cluster's node timeout; let patient commands ride through it.
    maxRedirections: options.role === 'fail-fast' ? 16 : 64,
    slotsRefreshTimeout: 2000,
    // Keep the slot map fresh even when no MOVED says it changed (a failover seen by no command).
    slotsRefreshInterval: 5000,
    // TLS certificates name hosts, not the addresses the cluster hands out.
    ...(first.protocol === 'rediss:' ? { dnsLookup: (address, done) => done(null, address) } : {}),
  };
  return new StoppingCluster(
    nodes,
    options.role === 'fail-fast'
      ? { ...common, enableOfflineQueue: false }
      : { ...common, enableOfflineQueue: true },
  );
}

/** The cluster's own method that stops its periodic slot refresh (private in ioredis's types). */
interface RefreshTimer {
  clearNodesRefreshInterval?: () => void;
}

/**
 * ioredis's `Cluster`, whose periodic slot refresh stops for good when it is closed. ioredis
 * (5.11, and 6.0 alike) re-arms that refresh's timer in the callback of a refresh that was in
 * flight when the client was closed, whatever the callback's error, and from then on retries it
 * every `slotsRefreshInterval` on an empty node list: the closed client kept a timer, and with it
 * its process, alive for ever. Seen as a chaos test's process that never exited after its tests
 * had passed; the client left was BullMQ's blocking connection of an in-process worker, which
 * BullMQ makes with `duplicate()`, so copies are of this class too.
 */
export class StoppingCluster extends ioredis.Cluster {
  constructor(
    private readonly seeds: ClusterNode[],
    options: ClusterOptions,
  ) {
    super(seeds, options);
  }

  override refreshSlotsCache(callback?: Callback<void>): void {
    super.refreshSlotsCache(
      callback &&
        ((error) => {
          callback(error);
          // Closed (by disconnect or quit) or closing: a timer armed by the callback is ended
          // here, as disconnect() ends the one it finds. A reconnect arms a new one when ready.
          if (this.status === 'end' || this.status === 'close' || this.status === 'disconnecting') {
            (this as unknown as RefreshTimer).clearNodesRefreshInterval?.();
          }
        }),
    );
  }

  override duplicate(nodes: ClusterNode[] = [], overrides: ClusterOptions = {}): Cluster {
    return new StoppingCluster(nodes.length > 0 ? nodes : this.seeds, {
      ...this.options,
      ...overrides,
    });
  }
}
