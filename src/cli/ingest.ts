import cluster from 'node:cluster';
import { Command } from 'commander';
import { runService } from './run-service.js';

/** `inlet ingest`: the HTTP ingest server, configured from the environment. */
export function ingestCommand(): Command {
  return new Command('ingest')
    .description('run the HTTP ingest server (POST /webhooks/replicate)')
    .option(
      '--processes <n>',
      'run the ingest as n processes sharing the port (a number or auto; default INLET_INGEST_PROCESSES, else 1)',
    )
    .addHelpText(
      'after',
      '\nConfigured by environment variables: REDIS_URL, REPLICATE_WEBHOOK_SECRET, PORT, HOST, …\nSee the README for the full table.',
    )
    .action(async (options: { processes?: string }) => {
      const { ingestProcesses, runIngestCluster } = await import('./ingest-cluster.js');
      const processes = cluster.isPrimary ? ingestProcesses(options.processes) : 1;
      if (processes > 1) return runIngestCluster(processes);
      return runService('ingest', async (config, logger) => {
        // Loaded here, not at the top: `inlet --help` and the light commands start without it.
        const { startIngest } = await import('../ingest/server.js');
        return startIngest({ config, logger, clustered: cluster.isWorker });
      });
    });
}
