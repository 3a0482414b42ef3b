import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import type { Queue } from 'bullmq';
import type Koa from 'koa';
import { type Config, ConfigError, redactUrl, requireWebhookSecrets } from '../core/config.js';
import type { DeliveryJob } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { closeRedis, connectRedis, type RedisClient, whenReady } from '../core/redis.js';
import { openShardQueues } from '../core/shard-queues.js';
import { allShards, globalPrefix, layoutOf, queuePrefix } from '../core/shards.js';
import { mountAdmin } from './admin.js';
import { createIngestListener, WEBHOOK_PATH } from './app.js';
import { IngestMetrics } from './metrics.js';
import { QueueFigureReader } from './queue-figures.js';
import { ShardedEnqueuer } from './sharded-enqueuer.js';
import { decodeSecret, type SigningKey } from './signature.js';
import { StoreHealth } from './store-health.js';
import {
  DEFAULT_STORE_TIMEOUT_MS,
  type DeliveryOutcome,
  storeDeadlineMs,
} from './webhook-route.js';

export interface IngestOptions {
  config: Config;
  logger: Logger;
  /** Mounts further routes on the app (metrics, dashboard). */
  extend?: (app: Koa, router: Router, queue: Queue<DeliveryJob>) => void;
  onDelivery?: (outcome: DeliveryOutcome, seconds: number) => void;
  /**
   * One of several ingest processes under a cluster primary (`INLET_INGEST_PROCESSES`):
   * `/metrics` answers for all of them. @defaultValue `false`
   */
  clustered?: boolean;
  /** How long shutdown waits for requests in flight before it cuts connections. @defaultValue `10000` */
  drainTimeoutMs?: number;
}

export interface IngestServer {
  server: Server;
  /** e.g. `http://127.0.0.1:3000` */
  url: string;
  /** Shard 0's queue: with `INLET_SHARDS=1`, the one queue. */
  queue: Queue<DeliveryJob>;
  /** Every shard's queue, shard `i` at `i`. */
  queues: Queue<DeliveryJob>[];
  /** Stops accepting, answers what is in flight, closes Redis. Safe to call twice. */
  close(): Promise<void>;
}

/** How long the ingest waits for Redis before it listens anyway. */
const READY_WAIT_MS = 2000;

/** Starts the ingest: validates its secrets, connects to Redis and listens on HOST:PORT. */
export async function startIngest(options: IngestOptions): Promise<IngestServer> {
  const { config, logger } = options;
  const keys = decodeSecrets(requireWebhookSecrets(config));
  if (config.INLET_INSECURE_SKIP_VERIFY) {
    logger.warn(
      'INLET_INSECURE_SKIP_VERIFY=1: signatures are NOT checked and anyone can post deliveries. Never use this in production.',
    );
  }

  // Two connections: each script call checks its name against every script defined on its
  // connection, and BullMQ defines dozens. Stores (one write per tick), readiness and
  // metrics go through `redis`, which holds only inlet's script; BullMQ's Queue gets its own.
  // On a single Redis its command timeout backs up each store's own deadline, which grows with
  // the body's size. On a cluster it stays at 1 s, so a large store there still gets 1 s: with
  // the longer timeout, /readyz stayed at 503 for over 30 s after a master failed over in 3 of 8
  // runs of test/chaos/cluster-failover.chaos.ts, against 0 of 6 with 1 s (cause not found).
  const redis = connectRedis(config, {
    role: 'fail-fast',
    name: 'inlet:ingest',
    commandTimeoutMs: config.REDIS_CLUSTER
      ? DEFAULT_STORE_TIMEOUT_MS
      : storeDeadlineMs(DEFAULT_STORE_TIMEOUT_MS, config.INLET_MAX_BODY_BYTES),
  });
  const queueRedis = connectRedis(config, { role: 'fail-fast', name: 'inlet:ingest:queue' });
  reportConnection(redis, logger);
  queueRedis.on('error', () => undefined); // reported once through `redis`, the same server
  // One queue per shard (INLET_SHARDS, src/core/shards.ts); with 1, the `deliveries` queue.
  const queues = openShardQueues(config, queueRedis);
  for (const queue of queues) {
    queue.on('error', (error) => logger.debug({ err: error }, 'queue error'));
  }
  const queue = queues[0] as Queue<DeliveryJob>;
  const enqueuer = new ShardedEnqueuer(queues, redis, config);
  if (enqueuer.encoding === 'bullmq') {
    logger.warn(
      "the installed msgpackr does not encode jobs as BullMQ's does: each delivery is encoded by BullMQ (slower); run npm ci",
    );
  }
  const metrics = new IngestMetrics({ clustered: options.clustered ?? false });
  const layout = layoutOf(config);
  metrics.readFrom(new QueueFigureReader(queues, redis, globalPrefix(layout)));

  const listener = createIngestListener({
    enqueuer,
    logger,
    redis,
    prefix: config.INLET_PREFIX,
    // Readiness writes into every shard's slot: on a cluster, each may be on another master.
    probePrefixes: allShards(layout).map((index) => queuePrefix(layout, index)),
    storeHealth: new StoreHealth(),
    keys,
    skipVerify: config.INLET_INSECURE_SKIP_VERIFY,
    toleranceSeconds: config.WEBHOOK_TOLERANCE_SECONDS,
    maxBodyBytes: config.INLET_MAX_BODY_BYTES,
    onDelivery: (outcome, seconds) => {
      metrics.recordDelivery(outcome, seconds);
      options.onDelivery?.(outcome, seconds);
    },
    extend: (koa, router) => {
      metrics.mount(router);
      mountAdmin(koa, { queue, queues, logger, token: config.INLET_ADMIN_TOKEN });
      options.extend?.(koa, router, queue);
    },
  });
  // Listen once Redis is ready, or after READY_WAIT_MS without it (the ingest then answers 503
  // until it is back): a process that listened at once would answer its first deliveries 503
  // while still connecting, as a replacement process under INLET_INGEST_PROCESSES did.
  await whenReady([redis, queueRedis], READY_WAIT_MS);
  const server = createServer(listener);
  // Longer than common proxies' idle timeouts, so that they, not we, close idle connections.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  server.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const url = `http://${host}:${port}`;
  logger.info(
    {
      url: `${url}${WEBHOOK_PATH}`,
      prefix: config.INLET_PREFIX,
      ...(config.INLET_SHARDS > 1 ? { shards: config.INLET_SHARDS } : {}),
      ...(config.REDIS_CLUSTER ? { redisCluster: true } : {}),
      ...(config.INLET_MIN_REPLICAS > 0 ? { minReplicas: config.INLET_MIN_REPLICAS } : {}),
    },
    'ingest listening',
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= shutdown(server, queues, logger, options.drainTimeoutMs ?? 10_000).finally(() =>
      Promise.all([closeRedis(redis), closeRedis(queueRedis)]),
    );
    return closing;
  };
  return { server, url, queue, queues, close };
}

function decodeSecrets(secrets: string[]): SigningKey[] {
  return secrets.map((secret, index) => {
    try {
      return decodeSecret(secret);
    } catch (error) {
      throw new ConfigError(`REPLICATE_WEBHOOK_SECRET #${index + 1}: ${(error as Error).message}`);
    }
  });
}

async function shutdown(server: Server, queues: Queue[], logger: Logger, drainMs: number) {
  logger.info('ingest stopping: no new connections, answering requests in flight');
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections with no request in flight would hold close() open for ever.
  server.closeIdleConnections();
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  const cut = setTimeout(() => {
    logger.warn({ drainMs }, 'requests still in flight after the drain period; closing them');
    server.closeAllConnections();
  }, drainMs);
  await closed;
  clearInterval(idleSweep);
  clearTimeout(cut);
  // Closing the queue waits for Redis, which may be the reason we are stopping: wait 1 s at most.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(queues.map((queue) => queue.close().catch(() => undefined))),
    new Promise((resolve) => {
      timer = setTimeout(resolve, 1000);
    }),
  ]);
  clearTimeout(timer);
  logger.info('ingest stopped');
}

/** Logs Redis going away and coming back once each, not every reconnect attempt. */
function reportConnection(redis: RedisClient, logger: Logger): void {
  let down = false;
  redis.on('error', (error) => {
    if (!down)
      logger.warn(
        { err: redactUrl(error.message) },
        'Redis unavailable; answering 503 until it is back',
      );
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('Redis is back');
    down = false;
  });
}
