/**
 * An example processor: keeps a record of every prediction in a JSON-lines file, one line per
 * state it was handed: the output URLs of a succeeded prediction, the error of a failed one, the
 * progress of a running one. The file stands in for your database.
 *
 *   INLET_PROCESSORS=./examples/save-outputs.js SAVE_OUTPUTS_FILE=outputs.jsonl npx inlet dev
 *
 * Plain JavaScript, so that it runs as is; a TypeScript processor works the same once compiled.
 * Inside this checkout `inlet-webhooks` resolves to the package itself; in your project, install `inlet-webhooks` (see the README, "Use inlet in your project").
 */
import { appendFile } from 'node:fs/promises';
import { defineProcessor, isTerminal } from 'inlet-webhooks';

/** Where records go. Read at each run, so that a test can point it elsewhere. */
const outputFile = () => process.env.SAVE_OUTPUTS_FILE || 'outputs.jsonl';

export default defineProcessor({
  // Part of inlet's idempotency keys: renaming it makes inlet treat it as a new processor.
  name: 'save-outputs',
  // No `statuses`: every state. `statuses: ['succeeded']` would hand it finished images only.
  async handle(prediction, ctx) {
    const record = {
      predictionId: prediction.id,
      status: prediction.status,
      terminal: isTerminal(prediction.status),
      output: prediction.status === 'succeeded' ? prediction.output : undefined,
      error: prediction.error ?? undefined,
      webhookId: ctx.webhookId,
      attempt: ctx.attempt,
      // Query parameters of the webhook URL, e.g. `?customId=123` to tie it to your own record.
      customId: ctx.query.customId,
      savedAt: new Date().toISOString(),
      pid: process.pid,
    };
    // Replicate deletes outputs after an hour: copy the files now if you need them (pass
    // ctx.signal to fetch, so that a stopping worker can cut a long download short).
    //
    // inlet runs a terminal state's processor once per prediction, but a worker killed between
    // this write and inlet recording the success runs it again (at least once). An append is not
    // idempotent; with a database, upsert by prediction id instead.
    await appendFile(outputFile(), `${JSON.stringify(record)}\n`);
    ctx.log.info({ status: prediction.status, file: outputFile() }, 'prediction saved');
  },
});
