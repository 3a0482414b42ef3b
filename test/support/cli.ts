import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type Command, CommanderError } from 'commander';
import { freePort } from '../../src/core/free-port.js';
import { CLI, ROOT } from './paths.js';
import { GUARD_MS, waitFor } from './wait-for.js';

export { CLI, ROOT };

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Merged over a minimal environment (PATH and HOME only), never over the test's own. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kills the command after this long. @defaultValue `60000` */
  timeoutMs?: number;
}

/** The environment a CLI child starts from: nothing of the developer's inlet settings leaks in. */
export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOG_LEVEL: 'info',
  };
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Parses `args` through one of inlet's commands in this process, its action replaced by a no-op:
 * commander's exit code and stderr, without a process each (about 0.3 s of CPU apiece). For the
 * refusals that happen before a command's action; a test of the action runs the real process.
 */
export async function parseCommandLine(
  command: Command,
  args: string[],
): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  command
    .exitOverride()
    .configureOutput({ writeErr: (text) => (stderr += text), writeOut: () => undefined })
    .action(() => undefined);
  try {
    await command.parseAsync(args, { from: 'user' });
    return { code: 0, stderr };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode, stderr };
    throw error;
  }
}

/** Runs `inlet <args>` to completion. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout: child.stdoutText(), stderr: child.stderrText() };
}

/** A running `inlet <args>` whose output is collected as it comes. */
export type CliProcess = ChildProcess & {
  stdoutText(): string;
  stderrText(): string;
  /** Resolves with the first stdout JSON log line for which `match` is true. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
};

/** Starts `inlet <args>` in the background. */
export function spawnCli(
  args: string[],
  options: CliOptions & { detached?: boolean } = {},
): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: baseEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  }) as CliProcess;
  let stdout = '';
  let stderr = '';
  // Each complete stdout line is parsed once, as it arrives: a worker can log thousands of lines,
  // and parsing all of stdout again for every chunk made waiting quadratic in the log's length.
  const logLines: Array<Record<string, unknown>> = [];
  let partial = '';
  const waiters: Array<() => void> = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    logLines.push(...jsonLines(lines.join('\n')));
    for (const waiter of waiters.splice(0)) waiter();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdoutText = () => stdout;
  child.stderrText = () => stderr;
  child.waitForLog = (match, timeoutMs = GUARD_MS) =>
    new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        reject(
          new Error(
            `no matching log line in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
          ),
        );
      }, timeoutMs);
      let seen = 0;
      const check = () => {
        const found = logLines.slice(seen).find(match);
        seen = logLines.length;
        if (found) {
          clearTimeout(deadline);
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(deadline);
          reject(
            new Error(
              `exited (${child.exitCode ?? child.signalCode})\nstdout:\n${stdout}\nstderr:\n${stderr}`,
            ),
          );
        } else {
          waiters.push(check);
        }
      };
      child.once('exit', () => setImmediate(check));
      check();
    });
  return child;
}

/** The JSON objects among `text`'s lines; other lines are skipped. */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A partial line still being written.
    }
  }
  return lines;
}

/** Stops a background command with `signal` and waits for it to exit. */
export async function stopCli(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  return code;
}

/**
 * `inlet ingest` as a process of its own on a free port of 127.0.0.1 (so that a test's own load
 * does not slow the ingest's event loop), resolved once `/readyz` answers 200.
 */
export async function spawnTestIngest(
  env: Record<string, string>,
): Promise<{ process: CliProcess; port: number; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnCli(['ingest'], { env: { PORT: String(port), HOST: '127.0.0.1', ...env } });
  try {
    await waitFor('the ingest ready', async () => {
      if (child.exitCode !== null) throw new Error(`the ingest exited: ${child.stderrText()}`);
      return (await fetch(`${url}/readyz`).catch(() => null))?.ok;
    });
  } catch (error) {
    await stopCli(child);
    throw new Error(`${(error as Error).message}\n${child.stderrText()}`);
  }
  return { process: child, port, url };
}
