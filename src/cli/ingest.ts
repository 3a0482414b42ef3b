import { Command } from 'commander';
import { runService } from './run-service.js';

/** `inlet ingest`: the HTTP ingest server, configured from the environment. */
export function ingestCommand(): Command {
  return new Command('ingest')
    .description('run the HTTP ingest server (POST /webhooks/replicate)')
    .addHelpText(
      'after',
      '\nConfigured by environment variables: REDIS_URL, REPLICATE_WEBHOOK_SECRET, PORT, HOST, …\nSee the README for the full table.',
    )
    .action(() =>
      runService('ingest', async (config, logger) => {
        // Loaded here, not at the top: `inlet --help` and the light commands start without it.
        const { startIngest } = await import('../ingest/server.js');
        return startIngest({ config, logger });
      }),
    );
}
