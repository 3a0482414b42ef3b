import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus as hostCpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchSecret } from './deliveries.js';
import { type EndToEndResult, runEndToEnd } from './e2e.js';
import { type IngestRound, runIngestRounds } from './ingest-rounds.js';
import { BenchProcess, freePort, waitForHttp } from './processes.js';
import { summariseProfiles } from './profile-summary.js';
import { BenchRedis, persistenceField } from './redis.js';
import {
  callgrindAvailable,
  type InstructionRound,
  runInstructionRounds,
  runStoreInstructionRounds,
  type StoreInstructionRound,
  type StoreKind,
  type StoringServer,
} from './redis-instructions.js';
import { renderResults, revision } from './report.js';
import { runWorkerRounds, type WorkerRound } from './worker-rounds.js';

/**
 * `npm run bench [-- options]`: inlet's ingest against a bare Koa handler, `inlet worker` against
 * a bare BullMQ worker, end-to-end latency and the ingest's memory, all in one run on a private
 * redis-server. Writes bench/results.md (or, with --smoke, a temporary file) and prints it.
 * Exits non-zero only when something is broken (non-2xx answers, errors, failed jobs), never
 * for a slow number.
 */
const USAGE = `usage: npm run bench -- [--smoke] [--no-pin] [--profile] [--keep] [--workers N] [--out FILE]
  --smoke      a few seconds a round (CI); results go to a temporary file
  --no-pin     let the scheduler place processes (default: inlet's processes on CPU 1,
               Redis and the load generator on CPU 0)
  --profile    run the ingest and inlet's workers under --cpu-prof and print where time went
  --keep       keep the work folder (logs, profiles)
  --workers N  worker processes per worker round and for end-to-end (default 1)
  --out FILE   where to write the markdown (default bench/results.md)
  --only LIST  run only some parts: ingest,scaling,workers,instructions,e2e (default all;
               scaling adds rounds of the ingest as 2 processes to the ingest rounds, on ≥ 2
               cores; instructions counts Redis's work per delivery of each worker kind, and
               per stored delivery of the naive handler and inlet, under valgrind's callgrind,
               when valgrind is installed)
  --seconds N, --pairs N  override the round length and the number of round pairs
  --against DIR  also run \`DIR/cli/main.js ingest\` (a copy of dist/ built from the code before a
               change) as a fourth server, "before", in the same alternating rounds
  --cluster, --shards LIST  instead of the above, the topology bench (bench/cluster.ts): the
               whole pipeline on a single Redis and, with --cluster, a 3+3 Redis Cluster, for
               each INLET_SHARDS in LIST (e.g. 1,6) and each --workers count (e.g. 1,2)`;

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    workers: { type: 'string', default: '1' },
    out: { type: 'string' },
    only: { type: 'string', default: 'ingest,scaling,workers,instructions,e2e' },
    seconds: { type: 'string' },
    pairs: { type: 'string' },
    against: { type: 'string' },
    cluster: { type: 'boolean', default: false },
    shards: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
if (flags.cluster || flags.shards !== undefined) {
  const { runTopologyBench } = await import('./cluster.js');
  const work = mkdtempSync(join(tmpdir(), 'inlet-bench-'));
  const code = await runTopologyBench({
    cluster: flags.cluster,
    shards: flags.shards ?? '1',
    workers: flags.workers,
    seconds: Number(flags.seconds ?? (flags.smoke ? 2 : 5)),
    out: flags.out ?? (flags.smoke ? join(work, 'topology.md') : 'bench/topology.md'),
    workDir: work,
    log: (line) => process.stdout.write(`bench: ${line}\n`),
  });
  if (!flags.keep) rmSync(work, { recursive: true, force: true });
  process.exit(code);
}

const smoke = flags.smoke;
const pin = !flags['no-pin'] && canPin();
const mode = smoke
  ? { pairs: 1, seconds: 3, warmupSeconds: 1, workerPairs: 1, jobs: 2_000, e2eSeconds: 3 }
  : { pairs: 3, seconds: 10, warmupSeconds: 3, workerPairs: 2, jobs: 10_000, e2eSeconds: 10 };
/** Deliveries per counted round: instruction counts need no repeats, only enough to average. */
const INSTRUCTION_JOBS = smoke ? 300 : 2_000;
if (flags.seconds) mode.seconds = Number(flags.seconds);
if (flags.pairs) mode.pairs = mode.workerPairs = Number(flags.pairs);
const CONNECTIONS = 50;
const WORKER_CONCURRENCY = 10;
/** The target's rate, and a light one that shows the latency of an unsaturated pipeline. */
const E2E_RATES = [1_000, 100];
const workerProcesses = Math.max(1, Number(flags.workers) || 1);
const parts = new Set(flags.only.split(','));

const startedAt = new Date();
const builtFrom = revision();
const log = (line: string) => process.stdout.write(`bench: ${line}\n`);
const work = mkdtempSync(join(tmpdir(), 'inlet-bench-'));
/**
 * Pinned: the server under test (ingest or baseline) and the workers on CPU 1, Redis and the load
 * generator on CPU 0. End-to-end, the worker may run on either core. Children must be given a
 * CPU list, or they inherit the bench's own (CPU 0).
 */
const CPU_LISTS = { generator: '0', server: '1', any: '0,1' } as const;
const cpus = (role: keyof typeof CPU_LISTS) => (pin ? CPU_LISTS[role] : undefined);
const children: Array<BenchProcess | BenchRedis> = [];
let broken = false;
// A bench stopped with Ctrl-C (or by a CI timeout) must not leave servers and Redis behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) (child instanceof BenchRedis ? child.process : child).kill();
    if (!flags.keep) rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
}

let closeClient: () => void = () => undefined;
try {
  if (pin)
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const redis = await BenchRedis.start(cpus('generator'), cpus('any'));
  children.push(redis);
  const client = redis.client();
  // A failed run must not leave this client reconnecting to a Redis that is gone, for ever.
  closeClient = () => client.disconnect();
  const secret = benchSecret();

  const baselinePort = await freePort();
  const baseline = new BenchProcess(
    'baseline',
    process.execPath,
    ['--import', 'tsx', 'bench/baseline-server.ts'],
    {
      env: { PORT: String(baselinePort) },
      logFile: join(work, 'baseline.log'),
      cpus: cpus('server'),
    },
  );
  children.push(baseline);
  const naivePort = await freePort();
  const naive = naiveProcess(redis.url, secret, naivePort, 'naive.log');
  children.push(naive);
  const ingestPort = await freePort();
  const profileFlags = flags.profile ? ['--cpu-prof', '--cpu-prof-dir', join(work, 'profile')] : [];
  const ingest = ingestProcess(redis.url, secret, ingestPort, 'ingest.log', profileFlags);
  children.push(ingest);
  // Scaling: the same ingest as two processes (INLET_INGEST_PROCESSES=2), on every core.
  const scaling = parts.has('scaling') && hostCpus().length >= 2;
  const scaledPort = await freePort();
  const scaled = scaling
    ? new BenchProcess('inlet ingest ×2', process.execPath, ['dist/cli/main.js', 'ingest'], {
        env: {
          REDIS_URL: redis.url,
          REPLICATE_WEBHOOK_SECRET: secret,
          PORT: String(scaledPort),
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          INLET_INGEST_PROCESSES: '2',
        },
        logFile: join(work, 'ingest-x2.log'),
        cpus: cpus('any'),
      })
    : undefined;
  if (scaled) children.push(scaled);
  const beforePort = await freePort();
  const before = flags.against
    ? new BenchProcess(
        'inlet ingest (before)',
        process.execPath,
        [join(flags.against, 'cli/main.js'), 'ingest'],
        {
          env: {
            REDIS_URL: redis.url,
            REPLICATE_WEBHOOK_SECRET: secret,
            PORT: String(beforePort),
            HOST: '127.0.0.1',
            LOG_LEVEL: 'info',
          },
          logFile: join(work, 'ingest-before.log'),
          cpus: cpus('server'),
        },
      )
    : undefined;
  if (before) children.push(before);
  const beforeUrl = `http://127.0.0.1:${beforePort}`;
  const scaledUrl = `http://127.0.0.1:${scaledPort}`;
  const baselineUrl = `http://127.0.0.1:${baselinePort}`;
  const naiveUrl = `http://127.0.0.1:${naivePort}`;
  const ingestUrl = `http://127.0.0.1:${ingestPort}`;
  await waitForHttp(`${baselineUrl}/healthz`, baseline);
  await waitForHttp(`${naiveUrl}/healthz`, naive);
  if (scaled) await waitForHttp(`${scaledUrl}/healthz`, scaled);
  if (before) await waitForHttp(`${beforeUrl}/healthz`, before);
  await waitForHttp(`${ingestUrl}/healthz`, ingest);
  log(
    `redis, baseline, naive handler and ingest up; pinning ${pin ? 'on' : 'off'}; logs in ${work}`,
  );

  const ingestRounds: IngestRound[] = !parts.has('ingest')
    ? []
    : await runIngestRounds(
        [
          { name: 'baseline', baseUrl: baselineUrl, pid: baseline.pid },
          { name: 'naive', baseUrl: naiveUrl, pid: naive.pid },
          { name: 'inlet', baseUrl: ingestUrl, pid: ingest.pid },
          ...(before ? [{ name: 'before', baseUrl: beforeUrl, pid: before.pid }] : []),
          ...(scaled ? [{ name: 'inlet ×2', baseUrl: scaledUrl, pid: scaled.pid }] : []),
        ],
        {
          pairs: mode.pairs,
          seconds: mode.seconds,
          warmupSeconds: mode.warmupSeconds,
          connections: CONNECTIONS,
          secret,
          redis: client,
          redisPid: redis.process.pid,
          log,
        },
      );
  broken ||= ingestRounds.some(
    (r) => r.result.non2xx + r.result.errors + r.result.timeouts > 0 || r.result.total === 0,
  );
  const ingestRoundsPeakRssBytes = ingest.peakRss();
  const metrics = await fetch(`${ingestUrl}/metrics`).then(
    (response) =>
      response.ok ? 'on (GET /metrics answers)' : `off (GET /metrics: ${response.status})`,
    () => 'unreachable',
  );

  const skipped = workerCommandExists() ? 'not run (--only)' : '`inlet worker` not built yet';
  let workers: WorkerRound[] | string = skipped;
  let endToEnd: EndToEndResult[] | string = skipped;
  const workerSettings = {
    inletNodeArgs: profileFlags,
    redis: client,
    redisPid: redis.process.pid,
    redisUrl: redis.url,
    concurrency: WORKER_CONCURRENCY,
    processes: workerProcesses,
    cpus: cpus('server'),
    workDir: work,
    log,
  };
  const workersBuilt = workerCommandExists();
  if (workersBuilt && parts.has('workers')) {
    workers = await runWorkerRounds({
      ...workerSettings,
      jobs: mode.jobs,
      pairs: mode.workerPairs,
    });
    broken ||= workers.some((r) => r.failed > 0);
  }
  let instructions: InstructionRound[] | string = skipped;
  let storeInstructions: StoreInstructionRound[] | string = 'not run (--only)';
  if (parts.has('instructions')) {
    storeInstructions = callgrindAvailable()
      ? await runStoreInstructionRounds({
          deliveries: INSTRUCTION_JOBS,
          connections: CONNECTIONS,
          secret,
          cpus: cpus('generator'),
          workDir: work,
          startServer: (kind, redisUrl) => storingServer(kind, redisUrl, secret),
          log,
        })
      : 'valgrind not installed';
  }
  if (workersBuilt && parts.has('instructions')) {
    if (callgrindAvailable()) {
      instructions = await runInstructionRounds({
        jobs: INSTRUCTION_JOBS,
        pairs: 1,
        concurrency: WORKER_CONCURRENCY,
        cpus: cpus('server'),
        workDir: work,
        log,
      });
    } else {
      instructions = 'valgrind not installed';
    }
  }
  if (workersBuilt && parts.has('e2e')) {
    endToEnd = [];
    for (const rate of E2E_RATES) {
      const result = await runEndToEnd({
        ...workerSettings,
        cpus: cpus('any'),
        ingestUrl,
        secret,
        rate,
        seconds: mode.e2eSeconds,
        warmupSeconds: mode.warmupSeconds,
      });
      endToEnd.push(result);
      broken ||= result.failures > 0 || result.missing > 0;
    }
  }
  if (!workersBuilt) log('`inlet worker` is not available: worker and end-to-end figures skipped');

  const ingestPeakRssBytes = ingest.peakRss();
  const redisStalls = await aofStalls(client);
  const baselinePeakRssBytes = baseline.peakRss();
  client.disconnect();
  for (const child of children.reverse()) {
    await (child instanceof BenchRedis ? child.destroy() : child.stop());
  }
  children.length = 0;

  const markdown = renderResults({
    smoke,
    pinning: pin
      ? 'ingest, baselines and (worker rounds) workers on CPU 1; Redis and the load generator on CPU 0; the ingest as 2 processes, the AOF rewrites of Redis and, end-to-end, the worker on either core (taskset, aof_rewrite_cpulist)'
      : 'none (the scheduler places every process)',
    roundSeconds: mode.seconds,
    connections: CONNECTIONS,
    ingest: ingestRounds,
    workers,
    instructions,
    storeInstructions,
    instructionJobs: INSTRUCTION_JOBS,
    workerSetup: `${workerProcesses} process(es) of each kind, concurrency ${WORKER_CONCURRENCY}, LOG_LEVEL=info, ${mode.jobs} jobs per round; inlet with a no-op processor (ledger and all), raw BullMQ with a no-op function`,
    endToEnd,
    ingestPeakRssBytes,
    baselinePeakRssBytes,
    ingestRoundsPeakRssBytes,
    redisStalls,
    metrics,
    startedAt,
    revision: builtFrom,
    seconds: (Date.now() - startedAt.getTime()) / 1000,
  });
  const out =
    flags.out ??
    (smoke ? join(tmpdir(), `inlet-bench-smoke-${process.pid}.md`) : 'bench/results.md');
  writeFileSync(out, markdown);
  formatMarkdown(out);
  process.stdout.write(`\n${markdown}\nbench: written to ${out}\n`);
  if (flags.profile) process.stdout.write(summariseProfiles(join(work, 'profile')));
} catch (error) {
  broken = true;
  process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
} finally {
  closeClient();
  for (const child of children.reverse()) {
    await (child instanceof BenchRedis ? child.destroy() : child.stop()).catch(() => undefined);
  }
  if (!flags.keep && !flags.profile) rmSync(work, { recursive: true, force: true });
  else log(`work folder kept: ${work}`);
}
if (broken) {
  process.stderr.write(
    'bench: FAILED: something answered non-2xx, errored or lost jobs (see above)\n',
  );
  process.exitCode = 1;
}

/** The naive handler (bench/naive-server.ts) on `redisUrl`, pinned as a server under test. */
function naiveProcess(redisUrl: string, secret: string, port: number, logName: string) {
  return new BenchProcess(
    'naive handler',
    process.execPath,
    ['--import', 'tsx', 'bench/naive-server.ts'],
    {
      env: { PORT: String(port), REDIS_URL: redisUrl, REPLICATE_WEBHOOK_SECRET: secret },
      logFile: join(work, logName),
      cpus: cpus('server'),
    },
  );
}

/** `inlet ingest` on `redisUrl`, pinned as a server under test, logging at info. */
function ingestProcess(
  redisUrl: string,
  secret: string,
  port: number,
  logName: string,
  nodeFlags: string[] = [],
) {
  return new BenchProcess(
    'inlet ingest',
    process.execPath,
    [...nodeFlags, 'dist/cli/main.js', 'ingest'],
    {
      env: {
        REDIS_URL: redisUrl,
        REPLICATE_WEBHOOK_SECRET: secret,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      },
      logFile: join(work, logName),
      cpus: cpus('server'),
    },
  );
}

/** The naive handler or `inlet ingest` on `redisUrl`, once it answers (the counted rounds). */
async function storingServer(
  kind: StoreKind,
  redisUrl: string,
  secret: string,
): Promise<StoringServer> {
  const port = await freePort();
  const server =
    kind === 'inlet'
      ? ingestProcess(redisUrl, secret, port, 'ingest-counted.log')
      : naiveProcess(redisUrl, secret, port, 'naive-counted.log');
  children.push(server);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, server);
  return { url, stop: () => server.stop() };
}

/** How often Redis had to delay writes because the AOF fsync lagged (a slow or busy disk). */
async function aofStalls(redis: ReturnType<BenchRedis['client']>): Promise<string> {
  const field = async (name: string) => {
    const value = await persistenceField(redis, name);
    return Number.isNaN(value) ? '?' : String(value);
  };
  return `aof_delayed_fsync ${await field('aof_delayed_fsync')}, AOF rewrites ${await field('aof_rewrites')}`;
}

/** Lays the tables out as biome does, so that `biome ci .` accepts the committed results. */
function formatMarkdown(file: string): void {
  try {
    execFileSync('node_modules/.bin/biome', ['format', '--write', file], { stdio: 'ignore' });
  } catch {
    // Unformatted markdown is still the same results.
  }
}

function canPin(): boolean {
  try {
    execFileSync('taskset', ['-c', '0,1', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function workerCommandExists(): boolean {
  try {
    execFileSync(process.execPath, ['dist/cli/main.js', 'worker', '--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
