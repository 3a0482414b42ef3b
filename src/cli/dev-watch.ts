import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../core/logger.js';

/** Changes to files with these endings restart the worker. */
const WATCHED = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.json']);
/** Changes are gathered this long before a restart: editors write a file in several steps. */
const SETTLE_MS = 250;

export interface WatchedWorkerOptions {
  /** The `INLET_PROCESSORS` specs; the folders of those that are files are watched. */
  processors: string[];
  /** Environment of the worker process (REDIS_URL and secrets of `inlet dev` included). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  cwd?: string;
}

/**
 * `inlet dev --watch`: the worker runs as a child process (`inlet worker`), restarted when a file
 * in a processor's folder changes. A fresh process is the one honest way to reload ES modules and
 * everything they import. A restart is the worker's own graceful stop (running processors finish,
 * the rest go back to the queue) followed by a new start; the ingest keeps accepting meanwhile,
 * so no delivery is lost, only delayed. A worker that fails to start (a syntax error) waits for
 * the next change.
 */
export function startWatchedWorker(options: WatchedWorkerOptions): { close(): Promise<void> } {
  const { logger } = options;
  const cwd = options.cwd ?? process.cwd();
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  let child: ChildProcess | undefined;
  let closed = false;
  let restarting: Promise<void> = Promise.resolve();
  /** Children being stopped on purpose: their exit is not news. */
  const stopping = new Set<ChildProcess>();

  const start = () => {
    // Its own process group: a Ctrl-C reaches inlet dev only, which then stops the worker once,
    // gracefully. The IPC channel stops it too should inlet dev die without doing so.
    const started = spawn(process.execPath, [main, 'worker'], {
      cwd,
      env: options.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    started.once('exit', (code, signal) => {
      if (child === started) child = undefined;
      if (!closed && !stopping.has(started)) {
        logger.warn(
          { code, signal },
          'worker exited; fix the processor and save: it restarts on the next change',
        );
      }
    });
    child = started;
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    stopping.add(running);
    const exited = once(running, 'exit');
    running.kill('SIGTERM');
    await exited;
  };

  const folders = new Set<string>();
  for (const spec of options.processors) {
    if (/^[./\\]/.test(spec) || /\.(m|c)?(j|t)s$/.test(spec)) {
      folders.add(dirname(resolve(cwd, spec)));
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const changed = new Set<string>();
  const watchers: FSWatcher[] = [];
  for (const folder of folders) {
    try {
      const watcher = watch(folder, (_event, file) => {
        if (!file || !WATCHED.has(extname(file.toString()))) return;
        changed.add(file.toString());
        clearTimeout(timer);
        timer = setTimeout(() => {
          const files = [...changed];
          changed.clear();
          restarting = restarting.then(async () => {
            if (closed) return;
            logger.info({ files }, 'processor files changed: restarting the worker');
            await stop();
            if (!closed) start();
          });
        }, SETTLE_MS);
      });
      watchers.push(watcher);
    } catch (error) {
      logger.warn({ folder, err: (error as Error).message }, 'cannot watch this folder');
    }
  }
  if (folders.size === 0) {
    logger.warn('--watch: INLET_PROCESSORS names no processor file, so there is nothing to watch');
  } else {
    logger.info(
      { folders: [...folders] },
      'watching processor folders; a change restarts the worker',
    );
  }
  start();

  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      await restarting;
      await stop();
    },
  };
}
