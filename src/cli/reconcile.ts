import { Command } from 'commander';
import { loadConfig } from '../core/config.js';
import { createLogger, flushLogger } from '../core/logger.js';
import { globalPrefix, layoutOf } from '../core/shards.js';
import type { PassReport } from '../reconcile/reconcile-pass.js';
import { reachable } from './redis-command.js';
import { announceRedis, redisTarget } from './redis-target.js';
import { runService } from './run-service.js';

interface ReconcileFlags {
  once?: boolean;
  dryRun?: boolean;
}

/** `inlet reconcile`: delivers finished predictions whose webhook inlet never recorded. */
export function reconcileCommand(): Command {
  return new Command('reconcile')
    .description("deliver finished predictions whose webhook never arrived, from Replicate's API")
    .option('--once', 'run one pass and exit (for cron)')
    .option('--dry-run', 'with --once: list what would be delivered; store nothing')
    .addHelpText(
      'after',
      `
Reads REPLICATE_API_TOKEN, REDIS_URL and INLET_PREFIX, and INLET_RECONCILE_WINDOW_SECONDS (24 h),
INLET_RECONCILE_GRACE_SECONDS, INLET_RECONCILE_PAGE_BUDGET, INLET_RECONCILE_INTERVAL_SECONDS.
Without --once it runs passes until SIGTERM; of several running, one at a time holds the lease.

Examples:
  inlet reconcile --once --dry-run
  inlet reconcile`,
    )
    .action(async (flags: ReconcileFlags) => {
      if (flags.dryRun && !flags.once) {
        flags.once = true; // a dry run is one pass: a service that stores nothing has no use
      }
      if (flags.once) return once(Boolean(flags.dryRun));
      await runService('reconcile', async (config, logger) => {
        const { Reconciler } = await import('../reconcile/reconciler.js');
        const { ReconcileMetrics } = await import('../reconcile/reconcile-metrics.js');
        const metrics = new ReconcileMetrics();
        const reconciler = new Reconciler(config, logger, metrics);
        const server =
          config.INLET_RECONCILE_METRICS_PORT > 0
            ? await metrics.serve(
                config.INLET_RECONCILE_METRICS_PORT,
                config.HOST,
                reconciler.redis,
                globalPrefix(layoutOf(config)),
              )
            : undefined;
        logger.info(
          { metricsPort: config.INLET_RECONCILE_METRICS_PORT || undefined },
          'reconciler started',
        );
        const running = reconciler.run();
        return {
          close: async () => {
            server?.close();
            await reconciler.close();
            await running;
          },
        };
      });
    });
}

async function once(dryRun: boolean): Promise<void> {
  // Like replay and inspect: says which Redis, and finds the private one of an inlet dev here.
  const loaded = loadConfig();
  const target = redisTarget(loaded);
  const config = { ...loaded, REDIS_URL: target.url };
  const logger = createLogger({ level: config.LOG_LEVEL, base: { service: 'reconcile' } });
  const { Reconciler } = await import('../reconcile/reconciler.js');
  const reconciler = new Reconciler(config, logger); // refuses a missing token first
  announceRedis(target);
  try {
    await reachable(reconciler.redis, config.REDIS_URL);
    if (!dryRun && !(await reconciler.lease.acquire())) {
      process.stdout.write('another reconciler holds the lease: skipped this pass\n');
      return;
    }
    const report = await reconciler.pass({ dryRun, signal: reconciler.lease.signal });
    for (const r of report.reconciled) {
      const what = r.outcome === 'dry-run' ? 'would deliver' : r.outcome;
      process.stdout.write(
        `${r.webhookId}  prediction ${r.predictionId}  ${r.status}  completed ${r.completedAt ?? '?'}  ${what}\n`,
      );
    }
    process.stdout.write(`${summary(report, dryRun)}\n`);
    if (report.error) process.stderr.write(`inlet: ${report.error}\n`);
    if (report.stoppedBy === 'api-error') process.exitCode = 1;
  } finally {
    await reconciler.close();
    await flushLogger(logger);
  }
}

function summary(report: PassReport, dryRun: boolean): string {
  const n = report.reconciled.length;
  const delivered = dryRun
    ? `${n} would be delivered`
    : `${report.reconciled.filter((r) => r.outcome === 'accepted').length} delivered`;
  const counts = [
    plural(report.pages, 'page'),
    `${plural(report.gets, 'get')} (${plural(report.requests, 'API request')})`,
  ].join(', ');
  const found = `${plural(report.seen, 'prediction')} seen, ${report.recorded} recorded, ${report.deferred} deferred, ${delivered}`;
  return `${dryRun ? 'dry run: ' : ''}${counts}; ${found}; stopped at ${report.stoppedBy}${dryRun ? '; nothing stored' : ''}`;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}
