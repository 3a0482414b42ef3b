import { Command, InvalidArgumentError } from 'commander';
import { HEARTBEAT_MAX_AGE_MS, heartbeatProblem } from '../workers/heartbeat.js';

/**
 * `inlet healthcheck <file>`: exits 0 when a worker started with `--heartbeat-file <file>` has
 * refreshed it recently, 1 with one line otherwise. The compose file's worker healthcheck.
 */
export function healthcheckCommand(): Command {
  return new Command('healthcheck')
    .description("check a worker's heartbeat file (inlet worker --heartbeat-file)")
    .argument('<file>', 'the heartbeat file the worker keeps fresh')
    .option(
      '--max-age <ms>',
      'how old the heartbeat may be',
      (value) => {
        const ms = Number(value);
        if (!Number.isInteger(ms) || ms <= 0) {
          throw new InvalidArgumentError('expected a positive number of milliseconds');
        }
        return ms;
      },
      HEARTBEAT_MAX_AGE_MS,
    )
    .action(async (file: string, options: { maxAge: number }) => {
      const problem = await heartbeatProblem(file, options.maxAge);
      if (problem) {
        process.stderr.write(`inlet: ${problem}\n`);
        process.exitCode = 1;
      }
    });
}
