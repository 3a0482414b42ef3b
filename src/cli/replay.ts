import { Command } from 'commander';
import { ConfigError } from '../core/config.js';
import {
  allShards,
  globalPrefix,
  layoutOf,
  queuePrefix,
  recordPrefix,
  shardOf,
} from '../core/shards.js';
import type { DeadLetter } from './dead-letter.js';
import { readPredictionData } from './prediction-file.js';
import type { RerunPlan } from './rerun.js';

/** From this many deliveries on, a terminal gets a progress bar. */
const PROGRESS_FROM = 50;

interface ReplayFlags {
  all?: boolean;
  prediction?: string;
  dryRun?: boolean;
  rerun?: boolean;
  processor?: string;
  data?: string;
}

/** `inlet replay`: moves dead-lettered deliveries back to the queue. */
export function replayCommand(): Command {
  return new Command('replay')
    .description('re-drive dead-lettered deliveries back to the queue')
    .option('--all', 'every dead-lettered delivery')
    .option('--prediction <id>', "only this prediction's dead-lettered deliveries")
    .option('--dry-run', 'list what would be re-driven; move nothing')
    .option(
      '--rerun',
      'run --processor again for --prediction, although it already succeeded (see below)',
    )
    .option('--processor <names>', 'with --rerun: the processors to run again, comma-separated')
    .option(
      '--data <file>',
      'with --rerun: the prediction to deliver (JSON, or - for stdin) when its delivery is no longer stored',
    )
    .addHelpText(
      'after',
      `
Re-driven deliveries get all their tries again (INLET_ATTEMPTS); processors that already
succeeded on them are not run again. Fix the cause first, deploy, then replay.
Reads REDIS_URL and INLET_PREFIX, like the workers.

Without REDIS_URL, it uses the private Redis of an inlet dev running in this folder.

--rerun runs processors again for a prediction that already succeeded (after a fix, or to
backfill a new processor): it clears their once-per-prediction mark in the ledger and queues a
new delivery of the stored terminal prediction, webhook id inlet-rerun-<prediction>-<n>. The
worker runs every processor that wants that status and has no mark: the chosen ones, and any
that never succeeded for it. Completed deliveries are kept an hour; after that pass the
prediction with --data.

Examples:
  inlet replay --all --dry-run
  inlet replay --prediction e0hd0y5xzhrmc0cmyvmrq9xcy4
  inlet replay --prediction e0hd0y5xzhrmc0cmyvmrq9xcy4 --processor save-outputs --rerun --dry-run`,
    )
    .action(async (flags: ReplayFlags) => {
      if (flags.rerun) return rerun(flags);
      if (flags.processor !== undefined || flags.data !== undefined) {
        throw new ConfigError('--processor and --data go with --rerun');
      }
      if (Boolean(flags.all) === (flags.prediction !== undefined)) {
        throw new ConfigError('say what to re-drive: --all, or --prediction ID (not both)');
      }
      // Loaded here, not at the top: `inlet replay --help` needs none of BullMQ and ioredis.
      const { withRedis } = await import('./redis-command.js');
      await withRedis('replay', async (redis, config) => {
        const bar = await progressBar();
        const { redriveDeadLetters } = await import('./dead-letter.js');
        const layout = layoutOf(config);
        // Every shard's dead letters, one shard after another (one shard: the one queue).
        const shards =
          flags.prediction === undefined
            ? allShards(layout)
            : [shardOf(flags.prediction, layout.shards)];
        const result = { matched: 0, moved: 0, deliveries: [] as DeadLetter[] };
        for (const shard of shards) {
          const part = await redriveDeadLetters({
            redis,
            prefix: queuePrefix(layout, shard),
            recordPrefix: recordPrefix(layout, shard),
            figurePrefix: globalPrefix(layout),
            predictionId: flags.prediction,
            dryRun: flags.dryRun,
            onProgress: bar.update,
          });
          result.matched += part.matched;
          result.moved += part.moved;
          result.deliveries.push(...part.deliveries);
        }
        bar.stop();
        if (flags.dryRun) for (const delivery of result.deliveries) print(delivery);
        process.stdout.write(`${summary(result.matched, result.moved, flags)}\n`);
      });
    });
}

async function rerun(flags: ReplayFlags): Promise<void> {
  if (flags.prediction === undefined || flags.all) {
    throw new ConfigError('--rerun needs one --prediction ID (not --all)');
  }
  const processors = (flags.processor ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (processors.length === 0) {
    throw new ConfigError('--rerun needs --processor NAME[,NAME]: which processors to run again');
  }
  const predictionId = flags.prediction;
  const given = flags.data === undefined ? undefined : readPredictionData(flags.data);
  if (given && given.length !== 1) throw new ConfigError('--data: give one prediction for --rerun');
  const [{ withRedis }, { rerunProcessors }] = await Promise.all([
    import('./redis-command.js'),
    import('./rerun.js'),
  ]);
  await withRedis('replay', async (redis, config) => {
    const plan = await rerunProcessors({
      redis,
      config,
      predictionId,
      processors,
      given: given?.[0],
      dryRun: flags.dryRun ?? false,
    });
    process.stdout.write(`${rerunSummary(plan, flags.dryRun ?? false)}\n`);
  });
}

function rerunSummary(plan: RerunPlan, dryRun: boolean): string {
  const names = (list: string[]) => list.join(', ');
  const lines = [
    `${dryRun ? 'dry run: would queue' : 'queued'} delivery ${plan.webhookId}: prediction ${plan.prediction.id} (${plan.prediction.status}, from ${plan.from})`,
  ];
  if (plan.cleared.length > 0) {
    lines.push(
      `  ${dryRun ? 'would clear' : 'cleared'} the done mark of ${names(plan.cleared)}: runs again`,
    );
  }
  if (plan.firstTime.length > 0) {
    lines.push(
      `  ${names(plan.firstTime)}: never succeeded for this prediction, runs for the first time`,
    );
  }
  if (dryRun) lines.push('  nothing changed');
  return lines.join('\n');
}

/** A progress bar on stderr for large sets on a terminal; nothing otherwise. */
async function progressBar(): Promise<{
  update: (done: number, total: number) => void;
  stop: () => void;
}> {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    { format: 're-driving [{bar}] {value}/{total} deliveries', stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update: (done, total) => {
      if (total < PROGRESS_FROM) return;
      if (!started) bar.start(total, done);
      started = true;
      bar.update(done);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

function print(delivery: DeadLetter): void {
  const failed = delivery.failedProcessors.length > 0 ? delivery.failedProcessors.join(', ') : '-';
  process.stdout.write(
    `${delivery.webhookId}  prediction ${delivery.predictionId || '?'}  attempts ${delivery.attempts}  failed ${failed}  error: ${delivery.error.split('\n')[0]}\n`,
  );
}

function summary(matched: number, moved: number, flags: ReplayFlags): string {
  const which = flags.prediction ? ` for prediction ${flags.prediction}` : '';
  const deliveries = (n: number) => `${n} dead-lettered ${n === 1 ? 'delivery' : 'deliveries'}`;
  if (matched === 0) return `no dead-lettered deliveries${which}`;
  if (flags.dryRun) {
    return `dry run: would re-drive ${deliveries(matched)}${which}; nothing moved`;
  }
  const gone = matched - moved;
  const note = gone > 0 ? ` (${gone} left the dead-letter set meanwhile)` : '';
  return `re-drove ${moved} of ${deliveries(matched)}${which}${note}`;
}
