#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError, redactUrl } from '../core/config.js';
import { devCommand } from './dev.js';
import { loadDotEnv } from './env-file.js';
import { healthcheckCommand } from './healthcheck.js';
import { ingestCommand } from './ingest.js';
import { initCommand } from './init.js';
import { inspectCommand } from './inspect.js';
import { reconcileCommand } from './reconcile.js';
import { replayCommand } from './replay.js';
import { secretCommand } from './secret.js';
import { sendCommand } from './send.js';
import { workerCommand } from './worker.js';

/**
 * `inlet <command>`: one file per command in this folder, each thin over the modules it runs.
 * Any error a user can fix ends the process with one line on stderr and a non-zero exit.
 */
const { version } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('inlet')
  .description('Receive Replicate webhooks without ever losing one.')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  // Before any command runs, not for --help: `.env` of this folder, the real environment winning.
  .hook('preAction', () => {
    const loaded = loadDotEnv();
    if (loaded && loaded.set.length > 0) {
      process.stderr.write(
        `inlet: read ${loaded.set.join(', ')} from ${loaded.file} (set variables win over .env)\n`,
      );
    }
  });

program.addCommand(ingestCommand());
program.addCommand(workerCommand());
program.addCommand(sendCommand());
program.addCommand(secretCommand());
program.addCommand(devCommand());
program.addCommand(replayCommand());
program.addCommand(healthcheckCommand());
program.addCommand(inspectCommand());
program.addCommand(initCommand());
program.addCommand(reconcileCommand());

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed its one line (or the help); keep its exit code.
    process.exit(error.exitCode);
  }
  // Whatever the error quotes (a connection string in a driver's message), no credentials.
  process.stderr.write(`inlet: ${redactUrl((error as Error).message)}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}
