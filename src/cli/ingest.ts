import { Command } from 'commander';
import { loadConfig } from '../core/config.js';
import { createLogger, flushLogger } from '../core/logger.js';
import { onShutdownSignal } from './shutdown.js';

/** `inlet ingest`: the HTTP ingest server, configured from the environment. */
export function ingestCommand(): Command {
  return new Command('ingest')
    .description('run the HTTP ingest server (POST /webhooks/replicate)')
    .addHelpText(
      'after',
      '\nConfigured by environment variables: REDIS_URL, REPLICATE_WEBHOOK_SECRET, PORT, HOST, …\nSee the README for the full table.',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger({ level: config.LOG_LEVEL, base: { service: 'ingest' } });
      // Loaded here, not at the top: `inlet --help` and the light commands start without it.
      const { startIngest } = await import('../ingest/server.js');
      const ingest = await startIngest({ config, logger });
      onShutdownSignal(async (signal) => {
        logger.info({ signal }, 'shutdown requested');
        await ingest.close();
        flushLogger(logger);
      });
    });
}
