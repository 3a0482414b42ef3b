#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadDotEnv } from './env-file.js';

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

/**
 * Each command's module, loaded only when that command runs: `inlet healthcheck` (every few
 * seconds in a container) then takes about 0.12 s of CPU, `inlet secret` 0.25 s, not the
 * 0.8 s it takes to load BullMQ, ioredis and pino for every command. The order is --help's.
 */
const commands: Record<string, () => Promise<Command>> = {
  ingest: async () => (await import('./ingest.js')).ingestCommand(),
  worker: async () => (await import('./worker.js')).workerCommand(),
  send: async () => (await import('./send.js')).sendCommand(),
  secret: async () => (await import('./secret.js')).secretCommand(),
  dev: async () => (await import('./dev.js')).devCommand(),
  replay: async () => (await import('./replay.js')).replayCommand(),
  healthcheck: async () => (await import('./healthcheck.js')).healthcheckCommand(),
  inspect: async () => (await import('./inspect.js')).inspectCommand(),
  init: async () => (await import('./init.js')).initCommand(),
  reconcile: async () => (await import('./reconcile.js')).reconcileCommand(),
};

try {
  // The first word that is not an option names the command; anything else (no command, `help`,
  // a misspelt one) gets them all, so that help lists every command and commander can suggest.
  const named = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
  const only = named !== undefined && Object.hasOwn(commands, named) ? named : undefined;
  const chosen = Object.entries(commands).filter(([name]) => only === undefined || name === only);
  for (const command of await Promise.all(chosen.map(([, load]) => load()))) {
    program.addCommand(command);
  }
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
