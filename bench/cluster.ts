import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { StoppingCluster } from '../src/core/redis.js';
import { RedisClusterServer } from '../src/core/redis-cluster-server.js';
import { closeQueues, openShardQueues } from '../src/core/shard-queues.js';
import { processCpuSeconds } from './cpu-usage.js';
import { DeliveryPool } from './deliveries.js';
import { driveWebhooks } from './load.js';
import { BenchProcess, freePort, waitForHttp } from './processes.js';
import { BenchRedis } from './redis.js';
import { countJobs, NOOP_PROCESSOR, QUEUED_STATES } from './worker-rounds.js';

/**
 * `npm run bench -- --cluster --shards 1,6 --workers 1,2`: the whole pipeline (one ingest
 * process, K `inlet worker` processes with a no-op processor) on a single Redis and, with
 * `--cluster`, on a private Redis Cluster of 3 masters and 3 replicas, for every combination.
 * Each round drives the ingest for a few seconds, then waits until the workers have processed
 * every acknowledged delivery; Redis CPU is read from /proc for every redis-server (masters and
 * replicas), so the per-delivery figure is what the whole Redis side paid. A last round on the
 * cluster adds INLET_MIN_REPLICAS=1, for the cost of WAIT.
 */
export interface TopologySettings {
  cluster: boolean;
  shards: number[];
  workers: number[];
  seconds: number;
  connections: number;
  secret: string;
  workDir: string;
  log: (line: string) => void;
}

export interface TopologyRound {
  backend: 'single' | 'cluster';
  shards: number;
  workers: number;
  minReplicas: number;
  /** 2xx answers per second of load. */
  ingestPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** Deliveries processed per second, from the start of the load to the last one processed. */
  processedPerSecond: number;
  /** CPU of every redis-server, µs per acknowledged delivery (stored and processed). */
  redisUsPerDelivery: number;
  /** The same without what Redis spent idle over as long: the cost a delivery adds. */
  redisMarginalUs: number;
  /** Of which the busiest node's share. */
  busiestNodeShare: number;
}

interface Backend {
  url: string;
  pids: () => number[];
  client: () => Redis | Cluster;
  destroy: () => Promise<void>;
}

async function startBackend(cluster: boolean, dir: string): Promise<Backend> {
  if (!cluster) {
    const redis = await BenchRedis.start(undefined);
    return {
      url: redis.url,
      pids: () => [redis.process.pid],
      client: () => redis.client(),
      destroy: () => redis.destroy(),
    };
  }
  mkdirSync(dir, { recursive: true });
  const server = await RedisClusterServer.start({ dir, appendfsync: 'everysec' });
  return {
    url: server.url,
    pids: () => server.nodes.map((node) => node.pid),
    client: () =>
      new StoppingCluster(
        server.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
        { redisOptions: { maxRetriesPerRequest: 1 } },
      ),
    destroy: async () => {
      await server.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs every combination; one Redis (or cluster) per round, so no round inherits another's data. */
export async function runTopologyRounds(settings: TopologySettings): Promise<TopologyRound[]> {
  const plan: Array<Pick<TopologyRound, 'backend' | 'shards' | 'workers' | 'minReplicas'>> = [];
  for (const backend of settings.cluster
    ? (['single', 'cluster'] as const)
    : (['single'] as const)) {
    for (const shards of settings.shards) {
      for (const workers of settings.workers)
        plan.push({ backend, shards, workers, minReplicas: 0 });
    }
  }
  if (settings.cluster) {
    // The cost of WAIT: the largest cluster round again, with INLET_MIN_REPLICAS=1.
    const shards = Math.max(...settings.shards);
    const workers = Math.max(...settings.workers);
    plan.push({ backend: 'cluster', shards, workers, minReplicas: 1 });
  }
  const rounds: TopologyRound[] = [];
  for (const [index, round] of plan.entries()) {
    settings.log(
      `topology ${index + 1}/${plan.length}: ${round.backend}, ${round.shards} shard(s), ${round.workers} worker(s)${round.minReplicas ? ', INLET_MIN_REPLICAS=1' : ''}`,
    );
    rounds.push({ ...round, ...(await runRound(round, settings, index)) });
  }
  return rounds;
}

async function runRound(
  round: { backend: 'single' | 'cluster'; shards: number; workers: number; minReplicas: number },
  settings: TopologySettings,
  index: number,
) {
  const cluster = round.backend === 'cluster';
  const backend = await startBackend(cluster, join(settings.workDir, `cluster-${index}`));
  const prefix = cluster && round.shards === 1 ? '{bench}' : 'bench';
  const env = {
    REDIS_URL: backend.url,
    REDIS_CLUSTER: cluster ? '1' : '0',
    INLET_PREFIX: prefix,
    INLET_SHARDS: String(round.shards),
    INLET_MIN_REPLICAS: String(round.minReplicas),
    LOG_LEVEL: 'warn',
  };
  const port = await freePort();
  const children: BenchProcess[] = [];
  const client = backend.client();
  client.on('error', () => undefined);
  const queues = openShardQueues(
    { INLET_PREFIX: prefix, INLET_SHARDS: round.shards, REDIS_CLUSTER: cluster },
    client,
  );
  try {
    const ingest = new BenchProcess('ingest', process.execPath, ['dist/cli/main.js', 'ingest'], {
      env: {
        ...env,
        PORT: String(port),
        HOST: '127.0.0.1',
        REPLICATE_WEBHOOK_SECRET: settings.secret,
      },
      logFile: join(settings.workDir, `topology-${index}-ingest.log`),
    });
    children.push(ingest);
    for (let i = 0; i < round.workers; i++) {
      children.push(
        new BenchProcess('inlet worker', process.execPath, ['dist/cli/main.js', 'worker'], {
          env: { ...env, INLET_PROCESSORS: NOOP_PROCESSOR, WORKER_CONCURRENCY: '10' },
          logFile: join(settings.workDir, `topology-${index}-worker-${i}.log`),
        }),
      );
    }
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, ingest);
    const pool = new DeliveryPool(settings.secret);
    pool.refill(Math.max(20_000, settings.seconds * 6_000));
    // Counted from what is left to do, not from the completed set: BullMQ keeps at most 10,000
    // completed jobs (deliveryJobOptions), so on a fast host a count of completed jobs stopped
    // growing and the round waited out its 2 minutes for deliveries processed long before.
    const queuedNow = () => countJobs(queues, QUEUED_STATES);
    // Warm-up (JIT, connections, scripts loaded), processed before the measured load starts.
    const warm = await driveWebhooks(pool, {
      baseUrl: `http://127.0.0.1:${port}`,
      seconds: 1,
      connections: settings.connections,
    });
    const warmAcknowledged = warm.total - warm.non2xx - warm.errors - warm.timeouts;
    for (let i = 0; i < 600 && warmAcknowledged > 0 && (await queuedNow()) > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const failedBefore = await countJobs(queues, ['failed']);
    // What Redis spends with nothing to do (cron, the cluster bus, replication pings, idle
    // workers' blocking reads and stall checks), measured for 2 s and taken off the round's.
    const idleStart = backend.pids().map(processCpuSeconds);
    const idleFrom = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idleCpu = backend
      .pids()
      .reduce((sum, pid, i) => sum + processCpuSeconds(pid) - (idleStart[i] ?? 0), 0);
    const idlePerSecond = idleCpu / ((performance.now() - idleFrom) / 1000);
    const cpuBefore = backend.pids().map(processCpuSeconds);
    const started = performance.now();
    const load = await driveWebhooks(pool, {
      baseUrl: `http://127.0.0.1:${port}`,
      seconds: settings.seconds,
      connections: settings.connections,
    });
    const acknowledged = load.total - load.non2xx - load.errors - load.timeouts;
    // Every acknowledged delivery was stored before its 2xx: processed once nothing is queued.
    let queued = 0;
    const deadline = Date.now() + 120_000;
    for (;;) {
      queued = await queuedNow();
      if (queued === 0 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = backend.pids().map((pid, i) => processCpuSeconds(pid) - (cpuBefore[i] ?? 0));
    const redisSeconds = cpu.reduce((sum, value) => sum + value, 0);
    const failed = (await countJobs(queues, ['failed'])) - failedBefore;
    const completed = acknowledged - queued - failed;
    if (queued > 0 || failed > 0) {
      settings.log(
        `  of ${acknowledged} acknowledged deliveries, ${queued} still queued after 2 minutes and ${failed} failed`,
      );
      process.exitCode = 1;
    }
    return {
      ingestPerSecond: acknowledged / settings.seconds,
      p50: load.p50,
      p99: load.p99,
      non2xx: load.non2xx + load.errors + load.timeouts,
      processedPerSecond: completed / seconds,
      redisUsPerDelivery: (redisSeconds * 1e6) / Math.max(1, acknowledged),
      redisMarginalUs:
        (Math.max(0, redisSeconds - idlePerSecond * seconds) * 1e6) / Math.max(1, acknowledged),
      busiestNodeShare: Math.max(...cpu) / Math.max(redisSeconds, 1e-9),
    };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await closeQueues(queues);
    client.disconnect();
    await backend.destroy();
  }
}

/** The rounds as a markdown table, with what they were. */
export function renderTopology(rounds: TopologyRound[], settings: TopologySettings): string {
  const n = (value: number, digits = 0) =>
    value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const lines = [
    '| Redis | shards | workers | WAIT | ingest 2xx/s | p50 / p99 ms | processed/s | Redis µs CPU per delivery | of which beyond idle | busiest node | non-2xx |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rounds.map(
      (r) =>
        `| ${r.backend === 'cluster' ? '3 masters + 3 replicas' : 'single'} | ${r.shards} | ${r.workers} | ${r.minReplicas ? `${r.minReplicas} replica` : '–'} | ${n(r.ingestPerSecond)} | ${n(r.p50, 1)} / ${n(r.p99, 1)} | ${n(r.processedPerSecond)} | ${n(r.redisUsPerDelivery)} | ${n(r.redisMarginalUs)} | ${n(r.busiestNodeShare * 100)}% | ${r.non2xx} |`,
    ),
    '',
    `Each round: 1 s of warm-up (processed, not counted), then ${settings.seconds} s of load (${settings.connections} connections, unique signed deliveries) on one ingest process, workers running at the same time (concurrency 10, a no-op processor), then until every acknowledged delivery was processed. Redis CPU is every redis-server's (replicas included) from the start of the load until the last delivery was processed, divided by the deliveries acknowledged: store and processing together; "beyond idle" first takes off what the same Redis processes used over as long with nothing to do (measured for 2 s before the load). Nothing is pinned; every process shares the machine.`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The topology bench as `npm run bench` runs it for `--cluster` / `--shards`: writes the table
 * to `out` and prints it. Resolves the process's exit code.
 */
export async function runTopologyBench(options: {
  cluster: boolean;
  shards: string;
  workers: string;
  seconds: number;
  out: string;
  workDir: string;
  log: (line: string) => void;
}): Promise<number> {
  const { writeFileSync } = await import('node:fs');
  const { benchSecret } = await import('./deliveries.js');
  const list = (value: string, name: string) => {
    const numbers = value.split(',').map(Number);
    if (numbers.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new Error(`--${name}: expected whole numbers ≥ 1, comma-separated (got ${value})`);
    }
    return numbers;
  };
  const settings: TopologySettings = {
    cluster: options.cluster,
    shards: list(options.shards, 'shards'),
    workers: list(options.workers, 'workers'),
    seconds: options.seconds,
    connections: 50,
    secret: benchSecret(),
    workDir: options.workDir,
    log: options.log,
  };
  const rounds = await runTopologyRounds(settings);
  let markdown = `# inlet topology bench\n\n${renderTopology(rounds, settings)}`;
  if (settings.cluster) {
    options.log('WAIT latency: one delivery at a time, with and without INLET_MIN_REPLICAS=1');
    markdown += renderWaitLatency(await measureWaitLatency(settings));
  }
  writeFileSync(options.out, markdown);
  process.stdout.write(`\n${markdown}`);
  return Number(process.exitCode ?? 0);
}

/** Median and p99 of one-at-a-time deliveries, with and without INLET_MIN_REPLICAS=1. */
export interface WaitLatency {
  without: { p50: number; p99: number };
  with: { p50: number; p99: number };
  deliveries: number;
}

/**
 * WAIT's latency alone: two ingests on one cluster (3 shards), one with INLET_MIN_REPLICAS=1,
 * sent one delivery at a time in alternating batches, so that neither queueing nor the
 * machine's other load between batches favours one of them.
 */
export async function measureWaitLatency(settings: TopologySettings, batches = 6, size = 100) {
  const backend = await startBackend(true, join(settings.workDir, 'cluster-wait'));
  const children: BenchProcess[] = [];
  try {
    const urls: string[] = [];
    for (const minReplicas of ['0', '1']) {
      const port = await freePort();
      const ingest = new BenchProcess('ingest', process.execPath, ['dist/cli/main.js', 'ingest'], {
        env: {
          REDIS_URL: backend.url,
          REDIS_CLUSTER: '1',
          INLET_PREFIX: 'wait',
          INLET_SHARDS: '3',
          INLET_MIN_REPLICAS: minReplicas,
          LOG_LEVEL: 'warn',
          PORT: String(port),
          HOST: '127.0.0.1',
          REPLICATE_WEBHOOK_SECRET: settings.secret,
        },
        logFile: join(settings.workDir, `wait-${minReplicas}.log`),
      });
      children.push(ingest);
      await waitForHttp(`http://127.0.0.1:${port}/readyz`, ingest);
      urls.push(`http://127.0.0.1:${port}/webhooks/replicate`);
    }
    const pool = new DeliveryPool(settings.secret);
    pool.refill(batches * size * 2 + 100);
    const times: [number[], number[]] = [[], []];
    for (let batch = 0; batch < batches; batch++) {
      for (const which of [0, 1] as const) {
        for (let i = 0; i < size; i++) {
          const delivery = pool.take();
          const started = performance.now();
          const answer = await fetch(urls[which] as string, {
            method: 'POST',
            headers: delivery.headers,
            body: delivery.body,
          });
          await answer.arrayBuffer();
          if (answer.status !== 202) throw new Error(`WAIT latency: answered ${answer.status}`);
          if (batch > 0) times[which].push(performance.now() - started); // batch 0 warms up
        }
      }
    }
    const stats = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const at = (q: number) =>
        sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
      return { p50: at(0.5), p99: at(0.99) };
    };
    return { without: stats(times[0]), with: stats(times[1]), deliveries: times[0].length };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await backend.destroy();
  }
}

export function renderWaitLatency(latency: WaitLatency): string {
  const ms = (value: number) => value.toFixed(2);
  return `
| one delivery at a time, cluster, 3 shards | p50 ms | p99 ms |
|---|---|---|
| INLET_MIN_REPLICAS=0 | ${ms(latency.without.p50)} | ${ms(latency.without.p99)} |
| INLET_MIN_REPLICAS=1 | ${ms(latency.with.p50)} | ${ms(latency.with.p99)} |

${latency.deliveries} deliveries each, sent one after another in alternating batches of 100 (a first batch each to warm up, not counted); replicas on the same host, so WAIT's round trip is a loopback one.
`;
}
