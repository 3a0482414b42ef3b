import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { ConfigError, loadConfig } from '../core/config.js';
import { createLogger, flushLogger } from '../core/logger.js';
import { answerMetricsRequests } from '../ingest/cluster-metrics.js';

/** A worker that dies sooner than this after its start is restarted after {@link RESTART_DELAY_MS}. */
const EARLY_EXIT_MS = 5_000;
const RESTART_DELAY_MS = 1_000;
/** How long the primary waits for the workers to drain once stopping; theirs is 10 s plus Redis. */
const STOP_GRACE_MS = 15_000;

/**
 * The number of ingest processes: `--processes`, else `INLET_INGEST_PROCESSES`, else 1.
 * `auto` is the number of cores the process may use. Throws a {@link ConfigError} with one line.
 */
export function ingestProcesses(value = process.env.INLET_INGEST_PROCESSES): number {
  const text = value?.trim() ?? '';
  if (text === '') return 1;
  if (text === 'auto') return availableParallelism();
  const number = Number(text);
  if (!/^[0-9]+$/.test(text) || number < 1 || number > 256) {
    throw new ConfigError(
      `INLET_INGEST_PROCESSES: expected a whole number from 1 to 256, or auto (got ${JSON.stringify(text)})`,
    );
  }
  return number;
}

/**
 * The cluster primary of `inlet ingest` with several processes: forks `processes` workers, each
 * a whole ingest sharing the port (node's cluster module hands out connections), replaces a
 * worker that dies, aggregates `/metrics` for them, and on SIGTERM or SIGINT has every worker
 * drain (answer what is in flight, then close) before it exits 0.
 */
export async function runIngestCluster(processes: number): Promise<void> {
  // The same one-line configuration errors as a single process, before any worker starts.
  const config = loadConfig();
  const logger = createLogger({ level: config.LOG_LEVEL, base: { service: 'ingest-primary' } });
  answerMetricsRequests();
  let stopping = false;
  const startedAt = new Map<number, number>();
  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker.id, Date.now());
  };
  cluster.on('exit', (worker: Worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker.id) ?? 0);
    startedAt.delete(worker.id);
    if (stopping) return;
    logger.warn(
      { worker: worker.process.pid, code, signal },
      'ingest process exited; starting another',
    );
    // A process that cannot even start (Redis refused the secret, port taken) must not be
    // restarted in a tight loop.
    if (lived < EARLY_EXIT_MS) setTimeout(fork, RESTART_DELAY_MS).unref();
    else fork();
  });
  for (let i = 0; i < processes; i++) fork();
  logger.info({ processes }, 'ingest primary started');

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`inlet: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutdown requested; draining every ingest process');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    const exited = workers.map(
      (worker) => new Promise<void>((resolve) => worker.once('exit', () => resolve())),
    );
    // Ctrl-C in a terminal reaches every process of the group already: a second signal would
    // make a worker skip its drain. A SIGTERM sent to the primary alone is passed on.
    const pass = () => {
      for (const worker of workers) {
        if (!worker.isDead()) worker.process.kill('SIGTERM');
      }
    };
    const passTimer = setTimeout(pass, signal === 'SIGINT' ? 500 : 0);
    const cut = setTimeout(() => {
      logger.warn('ingest processes still running after the grace period; killing them');
      for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    void Promise.all(exited).then(async () => {
      clearTimeout(passTimer);
      clearTimeout(cut);
      logger.info('ingest primary stopped');
      await flushLogger(logger);
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
