import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ioredis } from './commonjs-packages.js';
import { freePort } from './free-port.js';

/** How a private redis-server is run. */
export interface RedisServerOptions {
  /** Its data folder: the AOF, and `redis.log` unless {@link logFile} says otherwise. */
  dir: string;
  /** Its port on 127.0.0.1. @defaultValue a free port, asked of the kernel */
  port?: number;
  /**
   * `always` loses nothing Redis acknowledged even to a SIGKILL (tests); `everysec` is what a
   * user runs (dev, bench). @defaultValue `'everysec'`
   */
  appendfsync?: 'always' | 'everysec';
  /** Where Redis logs. @defaultValue `<dir>/redis.log` */
  logFile?: string;
  /** The program. @defaultValue `'redis-server'` from PATH */
  binary?: string;
  /** Its own process group, so that Ctrl-C in a terminal does not reach it. @defaultValue false */
  detached?: boolean;
  /** CPUs to pin it to with `taskset -c` (the bench). */
  cpus?: string;
  /** A program (and its arguments) to run it under, e.g. valgrind to count its instructions. */
  launcher?: string[];
  /** Further `--name value` arguments (a cluster node's, see redis-cluster-server.ts). */
  extraArgs?: string[];
}

/** How a server that was not being stopped ended. */
export interface UnexpectedExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last line of its log, which usually says why. */
  lastLogLine: string;
}

/**
 * A private `redis-server` on 127.0.0.1, never the shared 6379: the one launcher behind
 * `inlet dev`'s private Redis, the tests' `TestRedis` and the bench's Redis. AOF on, no RDB
 * snapshots, `noeviction`, as inlet wants Redis run. {@link start} brings it back on the same port
 * and data after {@link crash} or an unexpected exit, which {@link onUnexpectedExit} reports.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly listeners: Array<(exit: UnexpectedExit) => void> = [];

  private constructor(
    private readonly options: RedisServerOptions,
    private portNumber: number,
  ) {}

  /**
   * Starts a server and resolves once it answers PING. When the port was not given and another
   * process took it between the kernel's answer and Redis binding it, it tries another.
   */
  static async start(options: RedisServerOptions): Promise<RedisServer> {
    for (let tries = 1; ; tries++) {
      const server = new RedisServer(options, options.port ?? (await freePort()));
      try {
        await server.start();
        return server;
      } catch (error) {
        const taken = /address already in use/i.test((error as Error).message);
        if (options.port !== undefined || !taken || tries === 3) throw error;
      }
    }
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.portNumber}`;
  }

  get dir(): string {
    return this.options.dir;
  }

  get logFile(): string {
    return this.options.logFile ?? join(this.options.dir, 'redis.log');
  }

  /** The server's process id (taskset and valgrind exec Redis in place, so it is Redis's own). */
  get pid(): number {
    if (this.child?.pid === undefined) throw new Error('redis-server is not running');
    return this.child.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && !this.child.signalCode;
  }

  /** Calls `listener` whenever the server exits without {@link stop} or {@link crash}. */
  onUnexpectedExit(listener: (exit: UnexpectedExit) => void): void {
    this.listeners.push(listener);
  }

  /** (Re)starts the server on its port and data; resolves once it answers PING. */
  async start(): Promise<void> {
    if (this.running) return;
    this.stopping = false;
    const args = this.arguments();
    const command = [...(this.options.launcher ?? []), this.options.binary ?? 'redis-server'];
    const [file = '', ...argv] = [
      ...(this.options.cpus ? ['taskset', '-c', this.options.cpus] : []),
      ...command,
      ...args,
    ];
    const child = spawn(file, argv, {
      cwd: this.options.dir,
      detached: this.options.detached ?? false,
      stdio: 'ignore',
    });
    this.child = child;
    let failure: Error | undefined;
    // A program that cannot be spawned emits 'error' and no 'exit'; 'close' comes after either.
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.once('error', (error) => {
      failure = error;
    });
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child) return;
      const exit = { code, signal, lastLogLine: this.lastLogLine() };
      for (const listener of this.listeners) listener(exit);
    });
    try {
      await this.waitUntilAnswering(child, () => failure);
    } catch (error) {
      this.stopping = true;
      child.kill('SIGKILL');
      throw error;
    }
  }

  /** Kills the server at once (SIGKILL), as a crash would, and waits for it to be gone. */
  async crash(): Promise<void> {
    this.stopping = true;
    if (this.running) this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Kills the server at once without waiting; for a process that is itself exiting. */
  kill(): void {
    this.stopping = true;
    if (this.running) this.child?.kill('SIGKILL');
  }

  /** Shuts it down cleanly (SIGTERM: Redis flushes its AOF), or kills it after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the process (SIGSTOP): connections stay open and nothing is answered. */
  freeze(): void {
    if (this.running) process.kill(this.pid, 'SIGSTOP');
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    if (this.running) process.kill(this.pid, 'SIGCONT');
  }

  /** The last line of the server's log, without Redis's pid and time prefix. */
  lastLogLine(): string {
    try {
      const lines = readFileSync(this.logFile, 'utf8').trim().split('\n');
      return lines.at(-1)?.replace(/^\d+:\w \d+ \w+ \d+ [\d:.]+ [#*.-] /, '') ?? 'no log';
    } catch {
      return 'no log';
    }
  }

  private arguments(): string[] {
    return [
      '--port',
      String(this.portNumber),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.options.dir,
      '--logfile',
      this.logFile,
      '--appendonly',
      'yes',
      '--appendfsync',
      this.options.appendfsync ?? 'everysec',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      ...(this.options.extraArgs ?? []),
    ];
  }

  private async waitUntilAnswering(
    child: ChildProcess,
    failure: () => Error | undefined,
  ): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const error = failure();
      if (error) throw new Error(`redis-server could not start: ${error.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `redis-server exited at start (${this.lastLogLine()}); see ${this.logFile}`,
        );
      }
      if (await redisAnswers(this.url, 200)) return;
      await new Promise((done) => setTimeout(done, 25));
    }
    throw new Error(`redis-server did not answer within 10 s; see ${this.logFile}`);
  }
}

/** True when a Redis at `url` answers PING within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 500): Promise<boolean> {
  const client = new ioredis.Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
