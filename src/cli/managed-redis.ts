import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { ConfigError } from '../core/config.js';
import { freePort } from '../core/free-port.js';
import { STATE_DIR } from './dev-secret.js';

/**
 * The private `redis-server` that `inlet dev` starts when no Redis is configured or reachable:
 * on a free port of 127.0.0.1, AOF on, data in `.inlet/redis/` of the working directory (so
 * queued deliveries survive a restart of `inlet dev`), stopped when `inlet dev` stops.
 *
 * It runs in its own process group, so that Ctrl-C in the terminal reaches `inlet dev` only:
 * the worker must finish its jobs before the Redis under it goes away.
 */
export interface ManagedRedis {
  url: string;
  port: number;
  pid: number;
  /** Where its data and log live. */
  dir: string;
  /** The pid of a server left by an earlier, killed `inlet dev` that was stopped first. */
  leftover?: number;
  /** Shuts it down cleanly (AOF flushed), or kills it after 10 s. Safe to call twice. */
  stop(): Promise<void>;
}

/** Written next to the data so that a later `inlet dev` can tell a leftover from a live one. */
interface OwnerRecord {
  devPid: number;
  redisPid: number;
  port: number;
}

const INSTALL_HINT =
  'install redis-server (macOS: brew install redis; Debian/Ubuntu: sudo apt-get install redis-server; Fedora: sudo dnf install redis) or set REDIS_URL to a Redis you run';

/** True when a Redis at `url` answers PING within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 500): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
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

/**
 * Starts a private redis-server for `cwd`; throws {@link ConfigError} when there is none to start.
 * @param why - why one is needed, the start of the error line when redis-server is missing.
 */
export async function startManagedRedis(
  cwd = process.cwd(),
  why = 'nothing answers on 127.0.0.1:6379',
): Promise<ManagedRedis> {
  const binary = findOnPath('redis-server');
  if (!binary) {
    throw new ConfigError(`${why} and redis-server is not on PATH: ${INSTALL_HINT}`);
  }
  const dir = resolve(cwd, STATE_DIR, 'redis');
  mkdirSync(dir, { recursive: true });
  const leftover = await clearLeftover(dir);
  const port = await freePort();
  const child = spawn(binary, redisArguments(dir, port), {
    cwd: dir,
    detached: true,
    stdio: 'ignore',
  });
  const exited = once(child, 'exit').then(() => undefined);
  // Whatever way this process ends, it must not leave the server behind.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  try {
    await waitUntilReady(child, port, dir);
  } catch (error) {
    child.kill('SIGKILL');
    process.removeListener('exit', killOnExit);
    throw error;
  }
  const pid = child.pid as number;
  writeOwner(dir, { devPid: process.pid, redisPid: pid, port });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM makes Redis flush the AOF and exit; SIGKILL only if it hangs.
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      process.removeListener('exit', killOnExit);
      rmSync(join(dir, 'owner.json'), { force: true });
    })();
    return stopping;
  };
  return { url: `redis://127.0.0.1:${port}`, port, pid, dir, leftover, stop };
}

function redisArguments(dir: string, port: number): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--logfile',
    join(dir, 'redis.log'),
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
  ];
}

async function waitUntilReady(child: ChildProcess, port: number, dir: string): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (error) => {
    failure = error;
  });
  for (let i = 0; i < 100; i++) {
    if (failure) throw new ConfigError(`redis-server could not start: ${failure.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new ConfigError(
        `redis-server exited at start (${lastLogLine(dir)}); see ${join(dir, 'redis.log')}`,
      );
    }
    if (await redisAnswers(`redis://127.0.0.1:${port}`, 200)) return;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new ConfigError(`redis-server did not answer within 5 s; see ${join(dir, 'redis.log')}`);
}

/**
 * A server left by an `inlet dev` that was killed outright (SIGKILL) still holds the data
 * folder: stop it before starting another on the same AOF. A live `inlet dev` is left alone.
 */
async function clearLeftover(dir: string): Promise<number | undefined> {
  const owner = readOwner(dir);
  if (!owner) return undefined;
  if (owner.devPid !== process.pid && isAlive(owner.devPid)) {
    throw new ConfigError(
      `another inlet dev (pid ${owner.devPid}) is using ${dir}: stop it first, or run this one from another folder`,
    );
  }
  let stopped: number | undefined;
  if (isAlive(owner.redisPid) && commandOf(owner.redisPid).includes('redis-server')) {
    process.kill(owner.redisPid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(owner.redisPid); i++) {
      await new Promise((done) => setTimeout(done, 50));
    }
    stopped = owner.redisPid;
  }
  rmSync(join(dir, 'owner.json'), { force: true });
  return stopped;
}

function readOwner(dir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

function writeOwner(dir: string, owner: OwnerRecord): void {
  writeFileSync(join(dir, 'owner.json'), `${JSON.stringify(owner)}\n`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process, to make sure a recorded pid was not reused by another program. */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    try {
      return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    } catch {
      return '';
    }
  }
}

function lastLogLine(dir: string): string {
  try {
    const lines = readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n');
    return lines.at(-1)?.replace(/^\d+:\w \d+ \w+ \d+ [\d:.]+ [#*.-] /, '') ?? 'no log';
  } catch {
    return 'no log';
  }
}

/** The executable `name` on PATH, if any. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const folder of path.split(delimiter)) {
    if (!folder) continue;
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (existsSync(candidate)) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
