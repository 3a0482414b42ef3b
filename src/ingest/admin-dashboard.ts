import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Queue } from 'bullmq';
import type Koa from 'koa';
import { DASHBOARD_PATH, LOGOUT_PATH } from './admin-paths.js';

/** bull-board over the deliveries queue; admin.ts loads this on first use, behind its gate. */
export function dashboard(queue: Queue): Koa.Middleware {
  const serverAdapter = new KoaAdapter().setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: [
      new BullMQAdapter(queue, {
        description:
          'Replicate deliveries. Failed = dead-lettered: open one to see its error, retry it.',
        allowRetries: true,
      }),
    ],
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
