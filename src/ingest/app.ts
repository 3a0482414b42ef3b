import Router from '@koa/router';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import type { Logger } from '../core/logger.js';
import { type WebhookRouteOptions, webhookRoute } from './webhook-route.js';

export interface AppOptions extends WebhookRouteOptions {
  redis: Redis;
  logger: Logger;
  /** Mounts further routes (metrics, the dashboard) on the same app. */
  extend?: (app: Koa, router: Router) => void;
}

/** The path Replicate delivers to. */
export const WEBHOOK_PATH = '/webhooks/replicate';

/**
 * The ingest's Koa application: the webhook route, health and readiness, and JSON errors for
 * everything else. Listening and shutdown live in server.ts.
 */
export function createApp(options: AppOptions): Koa {
  const app = new Koa({ proxy: false });
  const router = new Router();

  app.use(jsonErrors(options.logger));
  router.post(WEBHOOK_PATH, webhookRoute(options));
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const ready = await redisAnswers(options.redis);
    ctx.status = ready ? 200 : 503;
    ctx.body = ready ? { status: 'ready' } : { status: 'unavailable', redis: options.redis.status };
  });
  options.extend?.(app, router);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

async function redisAnswers(redis: Redis): Promise<boolean> {
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}

/** Turns every unanswered path and every unexpected error into a JSON answer, never a stack. */
function jsonErrors(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
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
