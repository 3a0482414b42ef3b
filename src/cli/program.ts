import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadDotEnv } from './env-file.js';

/**
 * Each command's module, loaded only when that command runs: `inlet healthcheck` (every few
 * seconds in a container) then takes about 0.12 s of CPU, `inlet secret` 0.25 s, not the
 * 0.8 s it takes to load BullMQ, ioredis and pino for every command. The order is --help's.
 */
export const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
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

/**
 * The `inlet` program for `args` (the words after `inlet`): the command they name, or every
 * command when they name none (no command, `help`, a misspelt one), so that --help lists them
 * all and commander can suggest. Commander's errors are thrown (`exitOverride`), not exits.
 */
export async function createProgram(args: readonly string[]): Promise<Command> {
  const program = new Command('inlet')
    .description('Receive Replicate webhooks without ever losing one.')
    .version(packageVersion(), '-V, --version', 'print the version')
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
  // The first word that is not an option names the command.
  const named = args.find((arg) => !arg.startsWith('-'));
  const only = named !== undefined && Object.hasOwn(COMMANDS, named) ? named : undefined;
  // `inlet --version` needs no command: loading them all took 0.55–0.87 s of CPU, against
  // 0.15–0.22 without.
  if (named === undefined && args.some((arg) => arg === '-V' || arg === '--version')) {
    return program;
  }
  const chosen = Object.entries(COMMANDS).filter(([name]) => only === undefined || name === only);
  for (const command of await Promise.all(chosen.map(([, load]) => load()))) {
    program.addCommand(command);
  }
  return program;
}

/**
 * inlet's version, from the nearest package.json above this file: the package's own, whether
 * this runs from dist/cli (installed, or in the image), from src/cli under tsx, or from the
 * tests' build/src/cli.
 */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    }
    if (dirname(dir) === dir) throw new Error("no package.json above inlet's own files");
  }
}
