import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import { Queue } from 'bullmq';
import type Koa from 'koa';
import { type Config, ConfigError, redactUrl, requireWebhookSecrets } from '../core/config.js';
import { type DeliveryJob, QUEUE_NAME } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { closeRedis, createRedis } from '../core/redis.js';
import { mountAdmin } from './admin.js';
import { createApp, WEBHOOK_PATH } from './app.js';
import { DeliveryEnqueuer } from './enqueue-delivery.js';
import { IngestMetrics } from './metrics.js';
import { QueueFigureReader } from './queue-figures.js';
import { decodeSecret, type SigningKey } from './signature.js';
import { StoreHealth } from './store-health.js';
import type { DeliveryOutcome } from './webhook-route.js';

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
  queue: Queue<DeliveryJob>;
  /** Stops accepting, answers what is in flight, closes Redis. Safe to call twice. */
  close(): Promise<void>;
}

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
  // connection, and BullMQ defines dozens. Stores (auto-pipelined every tick), readiness and
  // metrics go through `redis`, which holds only inlet's script; BullMQ's Queue gets its own.
  const redis = createRedis(config.REDIS_URL, { role: 'fail-fast', name: 'inlet:ingest' });
  const queueRedis = createRedis(config.REDIS_URL, {
    role: 'fail-fast',
    name: 'inlet:ingest:queue',
  });
  reportConnection(redis, logger);
  queueRedis.on('error', () => undefined); // reported once through `redis`, the same server
  const queue = new Queue<DeliveryJob>(QUEUE_NAME, {
    connection: queueRedis,
    prefix: config.INLET_PREFIX,
  });
  queue.on('error', (error) => logger.debug({ err: error }, 'queue error'));
  const enqueuer = new DeliveryEnqueuer(queue, redis, config);
  const metrics = new IngestMetrics({ clustered: options.clustered ?? false });
  metrics.readFrom(new QueueFigureReader(queue, redis, config.INLET_PREFIX));

  const app = createApp({
    enqueuer,
    logger,
    redis,
    prefix: config.INLET_PREFIX,
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
      mountAdmin(koa, { queue, logger, token: config.INLET_ADMIN_TOKEN });
      options.extend?.(koa, router, queue);
    },
  });
  const server = createServer(app.callback());
  // Longer than common proxies' idle timeouts, so that they, not we, close idle connections.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  server.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const url = `http://${host}:${port}`;
  logger.info({ url: `${url}${WEBHOOK_PATH}`, prefix: config.INLET_PREFIX }, 'ingest listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= shutdown(server, queue, logger, options.drainTimeoutMs ?? 10_000).finally(() =>
      Promise.all([closeRedis(redis), closeRedis(queueRedis)]),
    );
    return closing;
  };
  return { server, url, queue, close };
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

async function shutdown(server: Server, queue: Queue, logger: Logger, drainMs: number) {
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
    queue.close().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, 1000);
    }),
  ]);
  clearTimeout(timer);
  logger.info('ingest stopped');
}

/** Logs Redis going away and coming back once each, not every reconnect attempt. */
function reportConnection(redis: ReturnType<typeof createRedis>, logger: Logger): void {
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
