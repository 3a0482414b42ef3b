import { type Config, loadConfig, redactUrl } from '../core/config.js';
import { createLogger, flushLogger, type Logger } from '../core/logger.js';
import { listenError } from './listen-error.js';

import { onShutdownSignal } from './shutdown.js';

/**
 * Runs a long-lived process (`inlet ingest`, `inlet worker`): configuration from the
 * environment, JSON logs tagged with `service`, then `start`; on SIGTERM or SIGINT it closes
 * what `start` returned, flushes the logs and exits 0.
 */
export async function runService(
  service: string,
  start: (config: Config, logger: Logger) => Promise<{ close(): Promise<void> }>,
): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.LOG_LEVEL, base: { service } });
  logger.info({ redis: redactUrl(config.REDIS_URL), prefix: config.INLET_PREFIX }, 'Redis');
  const running = await start(config, logger).catch((error: unknown) => {
    throw listenError(error, config.PORT);
  });
  onShutdownSignal(async (signal) => {
    logger.info({ signal }, 'shutdown requested');
    await running.close();
    await flushLogger(logger);
  });
}
