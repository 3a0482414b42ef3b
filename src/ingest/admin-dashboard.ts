import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Queue } from 'bullmq';
import type Koa from 'koa';
import { DASHBOARD_PATH, LOGOUT_PATH } from './admin-paths.js';

/**
 * bull-board over the deliveries queue, or every shard's (`shard-<i>:deliveries`); admin.ts
 * loads this on first use, behind its gate.
 */
export function dashboard(queues: Queue[]): Koa.Middleware {
  const serverAdapter = new KoaAdapter().setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map(
      (queue, index) =>
        new BullMQAdapter(queue, {
          description:
            'Replicate deliveries. Failed = dead-lettered: open one to see its error, retry it.',
          allowRetries: true,
          ...(queues.length > 1 ? { prefix: `shard-${index}`, delimiter: ':' } : {}),
        }),
    ),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'inlet',
        hideDocsLink: true,
        miscLinks: [{ text: 'Log out', url: LOGOUT_PATH }],
      },
    },
  });
  return serverAdapter.registerPlugin();
}
