import { Command } from 'commander';
import { runService } from './run-service.js';

/** `inlet worker`: one worker process running the configured processors. */
export function workerCommand(): Command {
  return new Command('worker')
    .description('run one worker process; run more of them to scale out')
    .addHelpText(
      'after',
      '\nConfigured by environment variables: REDIS_URL, INLET_PROCESSORS, WORKER_CONCURRENCY,\nINLET_ATTEMPTS, INLET_BACKOFF_MS, INLET_SHUTDOWN_GRACE_MS, … See the README for the full table.\nOn SIGTERM it stops taking jobs, lets running ones finish, then hands back the rest.',
    )
    .option(
      '--heartbeat-file <file>',
      'keep this file fresh while connected, for `inlet healthcheck <file>`',
    )
    .action((options: { heartbeatFile?: string }) =>
      runService('worker', async (config, logger) => {
        // Loaded here, not at the top: `inlet --help` and the light commands start without it.
        const { startWorker } = await import('../workers/worker.js');
        const worker = await startWorker({ config, logger, heartbeatFile: options.heartbeatFile });
        // Started by `inlet dev --watch` (with an IPC channel): stop gracefully if it goes away.
        if (process.send) {
          process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
        }
        return worker;
      }),
    );
}
