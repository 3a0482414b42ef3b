import cliProgress from 'cli-progress';
import { Command } from 'commander';
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig, redactUrl } from '../core/config.js';
import { closeRedis, createRedis } from '../core/redis.js';
import type { DeadLetter } from '../workers/dead-letter.js';

/** From this many deliveries on, a terminal gets a progress bar. */
const PROGRESS_FROM = 50;

interface ReplayFlags {
  all?: boolean;
  prediction?: string;
  dryRun?: boolean;
}

/** `inlet replay`: moves dead-lettered deliveries back to the queue. */
export function replayCommand(): Command {
  return new Command('replay')
    .description('re-drive dead-lettered deliveries back to the queue')
    .option('--all', 'every dead-lettered delivery')
    .option('--prediction <id>', "only this prediction's dead-lettered deliveries")
    .option('--dry-run', 'list what would be re-driven; move nothing')
    .addHelpText(
      'after',
      `
Re-driven deliveries get all their tries again (INLET_ATTEMPTS); processors that already
succeeded on them are not run again. Fix the cause first, deploy, then replay.
Reads REDIS_URL and INLET_PREFIX, like the workers.

Examples:
  inlet replay --all --dry-run
  inlet replay --prediction e0hd0y5xzhrmc0cmyvmrq9xcy4`,
    )
    .action(async (flags: ReplayFlags) => {
      if (Boolean(flags.all) === (flags.prediction !== undefined)) {
        throw new ConfigError('say what to re-drive: --all, or --prediction ID (not both)');
      }
      const config = loadConfig();
      const redis = createRedis(config.REDIS_URL, { role: 'patient', name: 'inlet:replay' });
      redis.on('error', () => undefined);
      try {
        await reachable(redis, config.REDIS_URL);
        const bar = progressBar();
        const { redriveDeadLetters } = await import('../workers/dead-letter.js');
        const result = await redriveDeadLetters({
          redis,
          prefix: config.INLET_PREFIX,
          predictionId: flags.prediction,
          dryRun: flags.dryRun,
          onProgress: bar.update,
        });
        bar.stop();
        if (flags.dryRun) for (const delivery of result.deliveries) print(delivery);
        process.stdout.write(`${summary(result.matched, result.moved, flags)}\n`);
      } finally {
        await closeRedis(redis);
      }
    });
}

/** Fails in one line, within seconds, when Redis is not there: a patient client would wait. */
async function reachable(redis: Redis, url: string): Promise<void> {
  const timeout = new Promise<never>((_, reject) => {
    setTimeout(() => reject(new Error('timeout')), 5_000).unref();
  });
  try {
    await Promise.race([redis.ping(), timeout]);
  } catch {
    const shown = redactUrl(url);
    throw new ConfigError(
      `cannot reach Redis at ${shown}: set REDIS_URL to the Redis inlet uses (inlet dev logs its own)`,
    );
  }
}

/** A progress bar on stderr for large sets on a terminal; nothing otherwise. */
function progressBar(): { update: (done: number, total: number) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
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
