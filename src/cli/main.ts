#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../core/config.js';
import { devCommand } from './dev.js';
import { ingestCommand } from './ingest.js';
import { reconcileCommand } from './reconcile.js';
import { replayCommand } from './replay.js';
import { secretCommand } from './secret.js';
import { sendCommand } from './send.js';
import { workerCommand } from './worker.js';

/**
 * `inlet <command>`: one file per command in this folder, each thin over the modules it runs.
 * Any error a user can fix ends the process with one line on stderr and a non-zero exit.
 */
const program = new Command('inlet')
  .description('Receive Replicate webhooks without ever losing one.')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program.addCommand(ingestCommand());
program.addCommand(workerCommand());
program.addCommand(sendCommand());
program.addCommand(secretCommand());
program.addCommand(devCommand());
program.addCommand(replayCommand());
program.addCommand(reconcileCommand());

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed its one line (or the help); keep its exit code.
    process.exit(error.exitCode);
  }
  const message = error instanceof ConfigError ? error.message : (error as Error).message;
  process.stderr.write(`inlet: ${message}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}
