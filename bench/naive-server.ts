import { createServer } from 'node:http';
import Router from '@koa/router';
import { Queue } from 'bullmq';
import Koa from 'koa';
import getRawBody from 'raw-body';
import { verifyWebhook } from '../src/ingest/signature.js';

/**
 * The handler a user would write instead of running inlet: Koa, the raw body, `verifyWebhook`
 * and `Queue.add` with the `webhook-id` as job id. No de-duplication window, no logs, no metrics.
 * `PORT=… REDIS_URL=… REPLICATE_WEBHOOK_SECRET=… node --import tsx bench/naive-server.ts`.
 */
const secret = process.env.REPLICATE_WEBHOOK_SECRET ?? '';
const queue = new Queue('naive-deliveries', { connection: { url: process.env.REDIS_URL } });
const app = new Koa();
const router = new Router();
router.post('/webhooks/replicate', async (ctx) => {
  const raw = await getRawBody(ctx.req, { limit: 1024 * 1024 });
  const verified = verifyWebhook(ctx.req.headers, raw, [secret]);
  if (!verified.ok) {
    ctx.status = 401;
    return;
  }
  const prediction = JSON.parse(raw.toString('utf8')) as { id?: string };
  await queue.add('prediction', prediction, { jobId: verified.webhookId });
  ctx.status = 202;
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
  server.close(() => void queue.close().then(() => process.exit(0)));
});
