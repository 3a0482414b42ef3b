import { Command } from 'commander';
import { ConfigError } from '../core/config.js';
import { layoutOf, recordPrefixOf, shardOf } from '../core/shards.js';
import type { DeliveryRecord, PredictionRecord } from './prediction-deliveries.js';

/** `inlet inspect`: one prediction's deliveries, ledger state and processor results. */
export function inspectCommand(): Command {
  return new Command('inspect')
    .description("show a prediction's deliveries, ledger state and each processor's result")
    .argument('<id>', 'a prediction id, or a webhook id (msg_…) of one of its deliveries')
    .option('--json', 'print what was found as one JSON object')
    .addHelpText(
      'after',
      `
Reads REDIS_URL and INLET_PREFIX like the workers; without REDIS_URL, the private Redis of an
inlet dev running in this folder. Completed deliveries are kept an hour, dead letters for
INLET_DEAD_LETTER_RETENTION_SECONDS; the ledger (which processors succeeded) longer.

Examples:
  inlet inspect e0hd0y5xzhrmc0cmyvmrq9xcy4
  inlet inspect msg_2uqDHHK0ExvOXSYZEnxmqPMHYQE --json`,
    )
    .action(async (id: string, flags: { json?: boolean }) => {
      // Loaded here, not at the top: `inlet inspect --help` needs none of BullMQ and ioredis.
      const [
        { withRedis },
        { closeQueues, openShardQueues },
        { predictionOfWebhook, readPrediction },
      ] = await Promise.all([
        import('./redis-command.js'),
        import('../core/shard-queues.js'),
        import('./prediction-deliveries.js'),
      ]);
      await withRedis('inspect', async (redis, config) => {
        const queues = openShardQueues(config, redis);
        try {
          // A webhook id names no shard: ask each (one, with INLET_SHARDS=1).
          let predictionId = id;
          for (const queue of queues) {
            const found = await predictionOfWebhook(redis, queue, id);
            if (found) predictionId = found;
            if (found) break;
          }
          const layout = layoutOf(config);
          const queue = queues[shardOf(predictionId, layout.shards)] as (typeof queues)[number];
          const prefix = recordPrefixOf(layout, predictionId);
          const record = await readPrediction(redis, queue, prefix, predictionId);
          if (record.deliveries.length === 0 && Object.keys(record.ledger).length === 0) {
            throw new ConfigError(
              `nothing stored for ${id}: no delivery or prediction by that id under prefix "${config.INLET_PREFIX}"`,
            );
          }
          process.stdout.write(
            flags.json ? `${JSON.stringify(asJson(record))}\n` : describe(record),
          );
        } finally {
          await closeQueues(queues);
        }
      });
    });
}

/** Each processor's result as the ledger and the jobs tell it. */
function processorResults(record: PredictionRecord): Map<string, string> {
  const results = new Map<string, string>();
  for (const [field, webhookId] of Object.entries(record.ledger)) {
    if (field.startsWith('done:')) results.set(field.slice(5), `succeeded (on ${webhookId})`);
  }
  for (const delivery of record.deliveries) {
    for (const field of Object.keys(delivery.ledger)) {
      if (field.startsWith('done:') && !results.has(field.slice(5))) {
        results.set(field.slice(5), `succeeded on ${delivery.webhookId} (delivery unfinished)`);
      }
    }
    const ran = (delivery.job.returnvalue as { ran?: string[] } | null)?.ran ?? [];
    for (const name of ran) {
      if (!results.has(name)) results.set(name, `succeeded (on ${delivery.webhookId})`);
    }
    for (const name of parseList(delivery.ledger.failed)) {
      if (results.has(name)) continue;
      const attempt = delivery.ledger.attempts ?? String(delivery.job.attemptsMade);
      const verdict = delivery.state === 'failed' ? 'dead-lettered' : 'failing, will retry';
      results.set(name, `${verdict} after attempt ${attempt} on ${delivery.webhookId}`);
    }
  }
  return results;
}

function describe(record: PredictionRecord): string {
  const lines = [`prediction ${record.predictionId}`];
  const { status, skipped } = record.ledger;
  lines.push(
    status
      ? `  ledger: terminal state ${status} recorded`
      : '  ledger: no terminal state recorded yet',
  );
  if (skipped) lines.push(`  ${skipped} late deliveries recorded but not dispatched`);
  if (record.lock) lines.push(`  processors running now (lock held, ${record.lock.ttlMs} ms left)`);
  lines.push(`deliveries (${record.deliveries.length} stored):`);
  for (const delivery of record.deliveries) lines.push(`  ${deliveryLine(delivery)}`);
  const results = processorResults(record);
  lines.push('processors:');
  if (results.size === 0) lines.push('  none has run yet');
  for (const [name, result] of results) lines.push(`  ${name}: ${result}`);
  return `${lines.join('\n')}\n`;
}

function deliveryLine(delivery: DeliveryRecord): string {
  const { job } = delivery;
  const received = new Date(job.data.receivedAt || job.timestamp).toISOString();
  const parts = [
    delivery.webhookId,
    job.data.prediction.status,
    delivery.state === 'failed' ? 'dead-lettered' : delivery.state,
    `received ${received}`,
    `attempts ${job.attemptsMade}`,
  ];
  const result = job.returnvalue as { outcome?: string; ran?: string[] } | null;
  if (result?.outcome) {
    parts.push(result.ran ? `${result.outcome}: ${result.ran.join(', ') || '-'}` : result.outcome);
  }
  if (job.failedReason) parts.push(`error: ${job.failedReason.split('\n')[0]}`);
  return parts.join('  ');
}

function asJson(record: PredictionRecord) {
  return {
    predictionId: record.predictionId,
    ledger: record.ledger,
    lock: record.lock,
    processors: Object.fromEntries(processorResults(record)),
    deliveries: record.deliveries.map(({ webhookId, state, job, ledger }) => ({
      webhookId,
      state,
      status: job.data.prediction.status,
      receivedAt: job.data.receivedAt,
      attemptsMade: job.attemptsMade,
      result: job.returnvalue ?? null,
      error: job.failedReason || null,
      ledger,
    })),
  };
}

function parseList(value: string | undefined): string[] {
  try {
    const list: unknown = JSON.parse(value ?? '[]');
    return Array.isArray(list) ? list.map(String) : [];
  } catch {
    return [];
  }
}
