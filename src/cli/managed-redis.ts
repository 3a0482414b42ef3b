import { execFileSync } from 'node:child_process';
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
import { ConfigError } from '../core/config.js';
import { RedisServer, redisAnswers } from '../core/redis-server.js';
import { STATE_DIR } from './dev-secret.js';

/**
 * The private `redis-server` that `inlet dev` starts when no Redis is configured or reachable:
 * on a free port of 127.0.0.1, AOF on, data in `.inlet/redis/` of the working directory (so
 * queued deliveries survive a restart of `inlet dev`), stopped when `inlet dev` stops. If it dies
 * while `inlet dev` runs, an error line says so and it is started again on the same port and
 * data (its AOF), so the ingest and worker reconnect to what they had.
 *
 * It runs in its own process group, so that Ctrl-C in the terminal reaches `inlet dev` only:
 * the worker must finish its jobs before the Redis under it goes away.
 */
export interface ManagedRedis {
  url: string;
  port: number;
  /** Its process id; a new one after a restart. */
  readonly pid: number;
  /** Where its data and log live. */
  dir: string;
  /** The pid of a server left by an earlier, killed `inlet dev` that was stopped first. */
  leftover?: number;
  /** Shuts it down cleanly (AOF flushed), or kills it after 10 s. Safe to call twice. */
  stop(): Promise<void>;
}

/** Where a managed server reports that it died and was restarted. */
export interface ManagedRedisLog {
  error(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/** Written next to the data so that a later `inlet dev` can tell a leftover from a live one. */
interface OwnerRecord {
  devPid: number;
  redisPid: number;
  port: number;
}

/** More deaths than this within {@link RESTART_WINDOW_MS} and it is left down. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

const INSTALL_HINT =
  'install redis-server (macOS: brew install redis; Debian/Ubuntu: sudo apt-get install redis-server; Fedora: sudo dnf install redis) or set REDIS_URL to a Redis you run';

export { redisAnswers };

/**
 * Starts a private redis-server for `cwd`; throws {@link ConfigError} when there is none to start.
 * @param why - why one is needed, the start of the error line when redis-server is missing.
 * @param log - told when the server dies and is restarted (`inlet dev`'s logger).
 */
export async function startManagedRedis(
  cwd = process.cwd(),
  why = 'nothing answers on 127.0.0.1:6379',
  log?: ManagedRedisLog,
): Promise<ManagedRedis> {
  const binary = findOnPath('redis-server');
  if (!binary) {
    throw new ConfigError(`${why} and redis-server is not on PATH: ${INSTALL_HINT}`);
  }
  const dir = resolve(cwd, STATE_DIR, 'redis');
  mkdirSync(dir, { recursive: true });
  const leftover = await clearLeftover(dir);
  let server: RedisServer;
  try {
    server = await RedisServer.start({ dir, binary, detached: true });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  // Whatever way this process ends, it must not leave the server behind.
  const killOnExit = () => server.kill();
  process.once('exit', killOnExit);
  writeOwner(dir, { devPid: process.pid, redisPid: server.pid, port: server.port });
  if (log) superviseRestarts(server, log);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // SIGTERM makes Redis flush the AOF and exit; SIGKILL only if it hangs.
      await server.stop(10_000);
      process.removeListener('exit', killOnExit);
      rmSync(join(dir, 'owner.json'), { force: true });
    })();
    return stopping;
  };
  return {
    url: server.url,
    port: server.port,
    get pid() {
      return server.pid;
    },
    dir,
    leftover,
    stop,
  };
}

/**
 * When the server dies under `inlet dev`, says so at error level and starts it again on the same
 * port and AOF; gives up, saying so, when it keeps dying.
 */
function superviseRestarts(server: RedisServer, log: ManagedRedisLog): void {
  const deaths: number[] = [];
  server.onUnexpectedExit(({ code, signal, lastLogLine }) => {
    const now = Date.now();
    deaths.push(now);
    while ((deaths[0] ?? now) < now - RESTART_WINDOW_MS) deaths.shift();
    const fields = { exitCode: code, signal, redisLog: server.logFile, lastLogLine };
    if (deaths.length > MAX_RESTARTS) {
      log.error(
        fields,
        `the private redis-server died ${deaths.length} times within a minute: not restarting it; deliveries get 503 until inlet dev is restarted`,
      );
      return;
    }
    log.error(fields, 'the private redis-server died; restarting it on its data (AOF)');
    server.start().then(
      () => {
        writeOwner(server.dir, { devPid: process.pid, redisPid: server.pid, port: server.port });
        log.info({ redisPid: server.pid, port: server.port }, 'private redis-server restarted');
      },
      (error: Error) =>
        log.error({ redisLog: server.logFile }, `could not restart redis-server: ${error.message}`),
    );
  });
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
