import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readFileSync } from 'node:fs';
import { freePort } from '../src/core/free-port.js';

export { freePort };

export interface SpawnSettings {
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go to this file (never the terminal); `/dev/null` discards them. */
  logFile: string;
  /** CPU list for `taskset -c`, e.g. `1`; unset runs unpinned. */
  cpus?: string | undefined;
}

/** A child process of the bench: started pinned or not, with its output in a file. */
export class BenchProcess {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private stopping = false;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    settings: SpawnSettings,
  ) {
    const out = openSync(settings.logFile, 'a');
    const [file, argv] = settings.cpus
      ? ['taskset', ['-c', settings.cpus, command, ...args]]
      : [command, args];
    this.child = spawn(file, argv, {
      env: { ...process.env, ...settings.env },
      stdio: ['ignore', out, out],
    });
    this.exited = once(this.child, 'exit').then(() => undefined);
    this.child.on('exit', (code, signal) => {
      if (!this.stopping) {
        process.stderr.write(
          `bench: ${name} exited unexpectedly (${signal ?? code}); see ${settings.logFile}\n`,
        );
        process.exitCode = 1;
      }
    });
  }

  /** The process id; `taskset` execs its command, so this is the program's own pid. */
  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Peak resident set size so far (`VmHWM`), in bytes. */
  peakRss(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  }

  /** Kills the process at once; for a bench that is itself being stopped. */
  kill(): void {
    this.stopping = true;
    if (this.running) this.child.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Polls `url` until it answers 200, or throws after `timeoutMs`. */
export async function waitForHttp(url: string, process: BenchProcess, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!process.running) throw new Error(`${process.name} exited before it answered ${url}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${process.name} did not answer ${url} within ${timeoutMs} ms`);
}
