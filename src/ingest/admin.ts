import type { Queue } from 'bullmq';
import type Koa from 'koa';
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import type { Logger } from '../core/logger.js';
import { loginPage } from './admin-login-page.js';
import { DASHBOARD_PATH, LOGIN_PATH, LOGOUT_PATH } from './admin-paths.js';
import { AdminCredentials, SESSION_COOKIE, SESSION_SECONDS } from './admin-session.js';

export interface AdminOptions {
  queue: Queue;
  /** Every shard's queue (INLET_SHARDS), each shown on the dashboard. @defaultValue `[queue]` */
  queues?: Queue[];
  logger: Logger;
  /** `INLET_ADMIN_TOKEN`; unset leaves every `/admin` path unanswered (404), never open. */
  token: string | undefined;
}

/**
 * Mounts the queue dashboard at {@link DASHBOARD_PATH}, behind `INLET_ADMIN_TOKEN`.
 *
 * Scripts send `Authorization: Bearer <token>`. Browsers log in at `/admin/login` with the token
 * and get an HttpOnly, SameSite=Strict session cookie (see admin-session.ts), which also covers
 * bull-board's own API calls (retry, clean, …). Changes made with a cookie must come from the
 * dashboard's own origin.
 */
export function mountAdmin(app: Koa, options: AdminOptions): void {
  const { logger, token } = options;
  if (!token) {
    logger.info('admin dashboard off: set INLET_ADMIN_TOKEN to serve it at /admin/queues');
    return;
  }
  const credentials = new AdminCredentials(token);
  app.use(adminGate(credentials, logger));
  app.use(lazyDashboard(options.queues ?? [options.queue]));
  // bull-board reports its own failures (e.g. Redis away) as app errors, not by throwing.
  app.on('error', (error: Error, ctx?: Context) => {
    logger.warn({ err: error.message, path: ctx?.path }, 'dashboard request failed');
  });
  logger.info({ path: DASHBOARD_PATH }, 'admin dashboard on, behind INLET_ADMIN_TOKEN');
}

/**
 * bull-board and its UI cost about 25 MB of memory, so they load with the first dashboard
 * request, not with the ingest: most ingests never serve a page.
 */
function lazyDashboard(queues: Queue[]): Koa.Middleware {
  let board: Promise<Koa.Middleware> | undefined;
  return async (ctx, next) => {
    if (ctx.path !== DASHBOARD_PATH && !ctx.path.startsWith(`${DASHBOARD_PATH}/`)) return next();
    board ??= import('./admin-dashboard.js').then((module) => module.dashboard(queues));
    return (await board)(ctx, next);
  };
}

/** Login, logout, and the check every dashboard request passes before bull-board sees it. */
function adminGate(credentials: AdminCredentials, logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    const path = ctx.path;
    if (path !== '/admin' && !path.startsWith('/admin/')) return next();
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'same-origin');
    if (!path.startsWith(`${DASHBOARD_PATH}/static/`)) ctx.set('Cache-Control', 'no-store');

    if (path === '/admin' || path === '/admin/') return ctx.redirect(`${DASHBOARD_PATH}/`);
    if (path === LOGIN_PATH) return login(ctx, credentials, logger);
    if (path === LOGOUT_PATH) return logout(ctx);
    if (path !== DASHBOARD_PATH && !path.startsWith(`${DASHBOARD_PATH}/`)) return next();

    if (credentials.matchesAuthorization(ctx.get('authorization'))) return next();
    if (credentials.verifySession(ctx.cookies.get(SESSION_COOKIE))) {
      if (!isSafe(ctx.method) && !sameOrigin(ctx)) return forbidden(ctx);
      return next();
    }
    return refuse(ctx);
  };
}

async function login(ctx: Context, credentials: AdminCredentials, logger: Logger): Promise<void> {
  ctx.set(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  );
  if (ctx.method === 'GET' || ctx.method === 'HEAD') {
    const next = safeNext(ctx.query.next);
    if (credentials.verifySession(ctx.cookies.get(SESSION_COOKIE))) return ctx.redirect(next);
    ctx.type = 'html';
    ctx.body = loginPage({ next });
    return;
  }
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    ctx.set('Allow', 'GET, HEAD, POST');
    return;
  }
  if (!sameOrigin(ctx)) return forbidden(ctx);
  const form = await readForm(ctx);
  const next = safeNext(form.get('next') ?? undefined);
  if (!credentials.matchesToken(form.get('token') ?? '')) {
    logger.warn({ ip: ctx.ip }, 'admin login refused: wrong token');
    ctx.status = 401;
    ctx.type = 'html';
    ctx.body = loginPage({ next, error: 'That is not the admin token. Check INLET_ADMIN_TOKEN.' });
    return;
  }
  logger.info({ ip: ctx.ip }, 'admin login');
  setSessionCookie(ctx, credentials.issueSession(), SESSION_SECONDS);
  ctx.status = 303;
  ctx.redirect(next);
}

function logout(ctx: Context): void {
  setSessionCookie(ctx, '', 0);
  ctx.status = 303;
  ctx.redirect(LOGIN_PATH);
}

/** Pages go to the login form; API calls and scripts get a JSON 401. */
function refuse(ctx: Context): void {
  const isPage =
    isSafe(ctx.method) &&
    !ctx.path.startsWith(`${DASHBOARD_PATH}/api/`) &&
    ctx.accepts('json', 'html') === 'html';
  if (isPage) {
    ctx.status = 303;
    ctx.redirect(`${LOGIN_PATH}?next=${encodeURIComponent(ctx.originalUrl)}`);
    return;
  }
  ctx.status = 401;
  ctx.set('WWW-Authenticate', 'Bearer realm="inlet admin"');
  ctx.body = {
    error: {
      code: 'unauthorized',
      message: `send Authorization: Bearer <INLET_ADMIN_TOKEN>, or log in at ${LOGIN_PATH}`,
    },
  };
}

function forbidden(ctx: Context): void {
  ctx.status = 403;
  ctx.body = {
    error: { code: 'cross_origin', message: 'admin changes must come from the dashboard itself' },
  };
}

/**
 * The cookie is written by hand because the ingest does not trust proxy headers (`proxy: false`),
 * yet behind a TLS-terminating proxy the cookie must still be `Secure`.
 */
function setSessionCookie(ctx: Context, value: string, maxAgeSeconds: number): void {
  const secure = ctx.secure || ctx.get('x-forwarded-proto').split(',')[0]?.trim() === 'https';
  const parts = [
    `${SESSION_COOKIE}=${value}`,
    'Path=/admin',
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
  ];
  if (secure) parts.push('Secure');
  ctx.append('Set-Cookie', parts.join('; '));
}

/**
 * SameSite=Strict keeps other sites' requests cookie-less, but not a sibling subdomain's: a
 * cookie-authenticated change must come from this very origin.
 */
function sameOrigin(ctx: Context): boolean {
  const site = ctx.get('sec-fetch-site');
  if (site) return site === 'same-origin';
  const origin = ctx.get('origin');
  if (!origin) return true;
  try {
    return new URL(origin).host === ctx.host;
  } catch {
    return false;
  }
}

function isSafe(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

/** Where to go after logging in: only ever a dashboard path, never another site. */
function safeNext(next: unknown): string {
  if (typeof next === 'string' && /^\/admin\/queues(?:[/?#]|$)/.test(next)) return next;
  return `${DASHBOARD_PATH}/`;
}

async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) return new URLSearchParams();
  try {
    const raw = await getRawBody(ctx.req, { limit: 8 * 1024, encoding: 'utf8' });
    return new URLSearchParams(raw);
  } catch {
    return new URLSearchParams();
  }
}
