import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import { withDeadline } from '../core/deadline.js';
import type { DeliveryJob } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import type { RedisClient } from '../core/redis.js';
import {
  type WebhookAnswer,
  type WebhookHandler,
  type WebhookRouteOptions,
  webhookHandler,
  webhookRoute,
} from './webhook-route.js';

export interface AppOptions extends WebhookRouteOptions {
  redis: RedisClient;
  logger: Logger;
  /** `INLET_PREFIX`: readiness writes its probe key under it. */
  prefix: string;
  /**
   * Readiness writes a probe key under each of these instead: every shard's queue prefix, so
   * that on a Redis Cluster every master holding a shard must take a write.
   * @defaultValue `[prefix]`
   */
  probePrefixes?: string[];
  /** Mounts further routes (metrics, the dashboard) on the same app. */
  extend?: (app: Koa, router: Router) => void;
}

/** The path Replicate delivers to. */
export const WEBHOOK_PATH = '/webhooks/replicate';

/**
 * The ingest's request listener. `POST /webhooks/replicate`, exactly that path with or without a
 * query, goes straight to the webhook handler on Node's request and response; everything else
 * (health, readiness, metrics, the dashboard, and the route's other spellings such as a trailing
 * slash) goes through the Koa app, whose route calls the same handler.
 *
 * Written by hand because the webhook needs none of Koa's context, middleware chain and router:
 * its answer is always a small JSON body. Skipping them, with the template encoding of
 * enqueue-delivery.ts, cut the ingest's CPU a request by 11–25 % in `npm run bench`.
 */
export function createIngestListener(options: AppOptions): RequestListener {
  const handle = webhookHandler(options);
  const koa = createApp(options, handle).callback();
  return (req, res) => {
    const url = req.url ?? '';
    if (req.method === 'POST' && url.startsWith(WEBHOOK_PATH)) {
      // A fragment is no part of the query (as Koa's parseurl reads it).
      const rest = url.slice(WEBHOOK_PATH.length).split('#', 1)[0] as string;
      if (rest === '' || rest.startsWith('?')) {
        answerDirectly(handle, req, res, parseQuery(rest.slice(1)), options.logger);
        return;
      }
    }
    void koa(req, res);
  };
}

function answerDirectly(
  handle: WebhookHandler,
  req: IncomingMessage,
  res: ServerResponse,
  query: DeliveryJob['query'],
  logger: Logger,
): void {
  handle(req, query)
    .then((answer) => send(res, answer))
    .catch((error: unknown) => {
      // The handler answers every refusal itself; this is a fault in it (or in its logging), and
      // never a stack to a client nor an unhandled rejection that would end the process.
      try {
        logger.error({ err: error, path: WEBHOOK_PATH }, 'request failed');
        send(res, {
          status: 500,
          body: { error: { code: 'internal', message: 'internal error' } },
        });
      } catch {
        res.destroy();
      }
    });
}

function send(res: ServerResponse, answer: WebhookAnswer): void {
  if (res.headersSent || res.destroyed) return;
  const json = JSON.stringify(answer.body);
  res.statusCode = answer.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  if (answer.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(answer.retryAfterSeconds));
  }
  res.end(json);
}

/** A query string as Koa's `ctx.query` reads it: a repeated name becomes an array. */
export function parseQuery(search: string): DeliveryJob['query'] {
  const query: DeliveryJob['query'] = {};
  if (search === '') return query;
  const params = new URLSearchParams(search);
  for (const name of new Set(params.keys())) {
    const values = params.getAll(name);
    // defineProperty, so that a name such as `__proto__` stays a plain field.
    Object.defineProperty(query, name, {
      value: values.length === 1 ? values[0] : values,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return query;
}

/**
 * The ingest's Koa application: the webhook route, health and readiness, and JSON errors for
 * everything else. Listening and shutdown live in server.ts; {@link createIngestListener} puts
 * the direct webhook path in front of it.
 */
export function createApp(
  options: AppOptions,
  handle: WebhookHandler = webhookHandler(options),
): Koa {
  const app = new Koa({ proxy: false });
  const router = new Router();

  app.use(jsonErrors(options.logger));
  router.post(WEBHOOK_PATH, webhookRoute(handle));
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', readiness(options));
  options.extend?.(app, router);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** How long readiness waits for its probe write. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * `GET /readyz`: 200 only when this ingest can store deliveries. Redis must take a real write (a
 * short-lived key under the prefix, refused like a store when Redis is out of memory or
 * read-only), and the last stores must not all have failed (which also catches what a
 * one-key write cannot, such as CROSSSLOT). Logs each change of verdict once.
 */
function readiness(options: AppOptions): Koa.Middleware {
  const probeKeys = (options.probePrefixes ?? [options.prefix]).map((prefix) => `${prefix}:readyz`);
  let wasReady = true;
  return async (ctx) => {
    let reason: string | undefined;
    let detail: string | undefined;
    try {
      const answers = await withDeadline(
        Promise.all(probeKeys.map((key) => options.redis.set(key, '1', 'PX', 10_000))),
        PROBE_TIMEOUT_MS,
        () => new Error(`no answer in ${PROBE_TIMEOUT_MS} ms`),
      );
      const refused = answers.find((answer) => answer !== 'OK');
      if (refused !== undefined) throw new Error(`SET answered ${String(refused)}`);
      detail = options.storeHealth?.failing();
      if (detail !== undefined) reason = 'stores_failing';
    } catch (error) {
      // A reply error (OOM, READONLY, MOVED) is Redis refusing; anything else is Redis away.
      reason =
        (error as Error).name === 'ReplyError' ? 'redis_refuses_writes' : 'redis_unavailable';
      detail = (error as Error).message;
    }
    if ((reason === undefined) !== wasReady) {
      wasReady = reason === undefined;
      if (wasReady) options.logger.info('ready again: Redis takes writes');
      else options.logger.warn({ reason, err: detail }, 'not ready: deliveries cannot be stored');
    }
    ctx.status = reason === undefined ? 200 : 503;
    ctx.body = reason === undefined ? { status: 'ready' } : { status: 'unavailable', reason };
  };
}

/** Turns every unanswered path and every unexpected error into a JSON answer, never a stack. */
function jsonErrors(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 501 && ctx.body == null) {
        // The router's answer to a method it has no route for at all (PROPFIND, PURGE, …):
        // 405 with the path's methods, like any other wrong method, or 404 for an unknown path.
        ctx.status = ctx.response.get('Allow') ? 405 : 404;
        if (ctx.status === 404) ctx.remove('Allow');
      }
      if ((ctx.status === 404 || ctx.status === 405) && ctx.body == null) {
        const status = ctx.status;
        const code = status === 404 ? 'not_found' : 'method_not_allowed';
        ctx.body = { error: { code, message: `no route for ${ctx.method} ${ctx.path}` } };
        ctx.status = status;
      }
    } catch (error) {
      const status = (error as { status?: number }).status ?? 500;
      const expose = status < 500 && (error as { expose?: boolean }).expose;
      if (!expose) logger.error({ err: error, path: ctx.path }, 'request failed');
      ctx.status = status;
      ctx.body = {
        error: {
          code: status === 405 ? 'method_not_allowed' : status < 500 ? 'bad_request' : 'internal',
          message: expose ? (error as Error).message : 'internal error',
        },
      };
    }
  };
}
