#!/usr/bin/env node
import { CommanderError } from 'commander';
import { createProgram } from './program.js';

/**
 * `inlet <command>`: one file per command in this folder, each thin over the modules it runs.
 * Any error a user can fix ends the process with one line on stderr and a non-zero exit.
 */
try {
  const program = await createProgram(process.argv.slice(2));
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed its one line (or the help); keep its exit code.
    process.exit(error.exitCode);
  }
  // Whatever the error quotes (a connection string in a driver's message), no credentials.
  // Loaded here, not above: config.js brings zod, which `inlet healthcheck` does not need.
  const { ConfigError, redactUrl } = await import('../core/config.js');
  process.stderr.write(`inlet: ${redactUrl((error as Error).message)}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}
