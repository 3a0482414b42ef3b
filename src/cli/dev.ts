import { Command } from 'commander';
import { type Config, ConfigError, loadConfig, redactUrl } from '../core/config.js';
import { createLogger, flushLogger, type Logger } from '../core/logger.js';
import type { IngestServer } from '../ingest/server.js';
import type { InletWorker } from '../workers/worker.js';
import { ensureDevSecret, STATE_DIR } from './dev-secret.js';
import { startWatchedWorker } from './dev-watch.js';
import { listenError } from './listen-error.js';
import { type ManagedRedis, redisAnswers, startManagedRedis } from './managed-redis.js';
import { removeDevRedisRecord, writeDevRedisRecord } from './redis-target.js';
import { DEFAULT_WEBHOOK_URL } from './send.js';
import { onShutdownSignal } from './shutdown.js';

const LOCAL_REDIS = 'redis://127.0.0.1:6379';

/** `inlet dev`: the ingest and one worker in one process, with a Redis found or started. */
export function devCommand(): Command {
  return new Command('dev')
    .description('run the ingest and a worker in one process, for local work')
    .option(
      '--private-redis',
      'start a private redis-server even when one answers on 127.0.0.1:6379',
    )
    .option(
      '--watch',
      "run the worker as a child process, restarted when a file in a processor's folder changes",
    )
    .addHelpText(
      'after',
      `
Redis: REDIS_URL when set; else the Redis on 127.0.0.1:6379 if one answers; else a private
redis-server from PATH (AOF on, data in ${STATE_DIR}/redis/), stopped when inlet dev stops.

Signing secret: REPLICATE_WEBHOOK_SECRET when set; else a dev secret made once and kept in
${STATE_DIR}/dev-secret, which \`inlet send\` run from the same folder signs with.

Listens on 127.0.0.1 unless HOST is set; logs are pretty on a terminal, JSON lines otherwise.
Same variables as ingest and worker (INLET_PROCESSORS, PORT, …).`,
    )
    .action(async (flags: { privateRedis?: boolean; watch?: boolean }) => {
      const config = loadConfig();
      const logger = createLogger({ level: config.LOG_LEVEL, pretty: process.stdout.isTTY });
      const redis = await chooseRedis(config, logger, flags.privateRedis ?? false);
      let ingest: IngestServer | undefined;
      let worker: Pick<InletWorker, 'close'> | undefined;
      const stop = async () => {
        // Side by side: each is bounded (the worker by grace + 2 s, even with Redis away).
        await Promise.all([worker?.close(), ingest?.close()]);
        if (redis.managed) {
          removeDevRedisRecord();
          await redis.managed.stop();
          logger.info('private redis-server stopped');
        }
        await flushLogger(logger);
      };
      // Handled from here on, during start-up too: a Ctrl-C must never leave the Redis behind.
      onShutdownSignal(async (signal) => {
        logger.info({ signal }, 'stopping');
        await stop();
      });
      // A closed terminal sends SIGHUP, which would end node and leave the Redis behind.
      process.once('SIGHUP', () => process.kill(process.pid, 'SIGTERM'));
      try {
        const devConfig = { ...config, ...signingFor(config, logger), REDIS_URL: redis.url };
        if (!process.env.HOST) devConfig.HOST = '127.0.0.1';
        // Loaded here, not at the top: the other commands start without them.
        const [{ startIngest }, { startWorker }] = await Promise.all([
          import('../ingest/server.js'),
          import('../workers/worker.js'),
        ]);
        ingest = await startIngest({
          config: devConfig,
          logger: logger.child({ service: 'ingest' }),
        });
        worker = flags.watch
          ? startWatchedWorker({
              processors: config.INLET_PROCESSORS,
              env: { ...process.env, REDIS_URL: redis.url },
              logger: logger.child({ service: 'dev' }),
            })
          : await startWorker({
              config: devConfig,
              logger: logger.child({ service: 'worker' }),
            });
      } catch (error) {
        await stop();
        throw listenError(error, config.PORT);
      }
      const webhookUrl = `${ingest.url}/webhooks/replicate`;
      const send = webhookUrl === DEFAULT_WEBHOOK_URL ? '' : ` --url ${webhookUrl}`;
      logger.info(
        `ready: deliver to ${webhookUrl}; try \`npx inlet send${send}\` in another terminal`,
      );
    });
}

interface DevRedis {
  url: string;
  managed?: ManagedRedis;
}

/** The configured Redis, else the usual local one, else a private one started for this run. */
async function chooseRedis(
  config: Config,
  logger: Logger,
  forcePrivate: boolean,
): Promise<DevRedis> {
  const configured = Boolean(process.env.REDIS_URL?.trim() || process.env.REDIS_URL_FILE);
  if (configured) {
    if (forcePrivate) throw new ConfigError('--private-redis and REDIS_URL: choose one');
    // A cluster's seed list is checked by the cluster client itself (a seed may be down).
    const first = config.REDIS_URL.split(',')[0] as string;
    if (!(await redisAnswers(first, 1000))) {
      logger.warn('REDIS_URL does not answer (yet): deliveries get 503 until it does');
    }
    logger.info({ redis: redactUrl(config.REDIS_URL) }, 'using REDIS_URL');
    return { url: config.REDIS_URL };
  }
  if (!forcePrivate && (await redisAnswers(LOCAL_REDIS))) {
    logger.info({ redis: LOCAL_REDIS }, 'using the Redis that answers on 127.0.0.1:6379');
    return { url: LOCAL_REDIS };
  }
  const managed = await startManagedRedis(
    process.cwd(),
    forcePrivate ? '--private-redis was given' : 'no REDIS_URL, nothing answers on 127.0.0.1:6379,',
    logger,
  );
  if (managed.leftover !== undefined) {
    logger.warn(
      { leftoverPid: managed.leftover },
      'stopped a redis-server left running by an earlier inlet dev that was killed',
    );
  }
  logger.info(
    { redisPid: managed.pid, port: managed.port, dir: managed.dir },
    `started a private redis-server at ${managed.url}; inlet commands run in this folder find it (${STATE_DIR}/redis.json)`,
  );
  writeDevRedisRecord(managed.url);
  return { url: managed.url, managed };
}

/**
 * The configured secrets, or the dev secret. Generated rather than skipping verification so that
 * dev checks signatures exactly as production does (see dev-secret.ts).
 */
function signingFor(config: Config, logger: Logger): Partial<Config> {
  if ((config.REPLICATE_WEBHOOK_SECRET ?? []).length > 0 || config.INLET_INSECURE_SKIP_VERIFY) {
    return {};
  }
  const { secret, created } = ensureDevSecret();
  logger.info(
    { file: `${STATE_DIR}/dev-secret` },
    `no REPLICATE_WEBHOOK_SECRET: ${created ? 'made' : 'using'} a dev secret (${secret}); \`inlet send\` here signs with it. For real Replicate deliveries through a tunnel, set REPLICATE_WEBHOOK_SECRET (\`inlet secret\` prints it)`,
  );
  return { REPLICATE_WEBHOOK_SECRET: [secret] };
}
