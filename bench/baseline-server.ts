import { createServer } from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import getRawBody from 'raw-body';

/**
 * The baseline the ingest is measured against: a Koa app with the same route that reads the
 * body, parses the JSON and answers 202, with no verification, no Redis and no logging.
 * It runs as its own process, as the ingest does: `PORT=… node --import tsx bench/baseline-server.ts`
 * listens on 127.0.0.1.
 */
const app = new Koa({ proxy: false });
const router = new Router();
router.post('/webhooks/replicate', async (ctx) => {
  const raw = await getRawBody(ctx.req, { limit: 10 * 1024 * 1024 });
  const prediction = JSON.parse(raw.toString('utf8')) as { id?: unknown };
  ctx.status = 202;
  ctx.body = { status: 'accepted', id: ctx.get('webhook-id') || prediction.id };
});
router.get('/healthz', (ctx) => {
  ctx.body = { status: 'ok' };
});
app.use(router.routes());

const server = createServer(app.callback());
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
