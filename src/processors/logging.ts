/**
 * The built-in processor, run when `INLET_PROCESSORS` is empty: one log line per delivery.
 * Written as a user's processor would be, except for where it imports from: a user imports
 * `defineProcessor` and `isTerminal` from 'inlet-webhooks'; inside the package nothing imports
 * the public entry (src/index.ts), so that it can never be part of an import cycle.
 */
import { isTerminal } from '../core/prediction.js';
import { defineProcessor } from '../workers/processor.js';

export default defineProcessor({
  name: 'log',
  async handle(prediction, ctx) {
    const outputs = Array.isArray(prediction.output) ? prediction.output.length : undefined;
    ctx.log.info(
      {
        status: prediction.status,
        model: prediction.model,
        attempt: ctx.attempt,
        predictTime: prediction.metrics?.predict_time,
        outputs,
        error: prediction.error ?? undefined,
        query: Object.keys(ctx.query).length > 0 ? ctx.query : undefined,
      },
      isTerminal(prediction.status)
        ? `prediction ${prediction.status}`
        : `prediction update: ${prediction.status}`,
    );
  },
});
