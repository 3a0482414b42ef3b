import { cpus } from 'node:os';
import type { Redis } from 'ioredis';
import { CpuMeter } from './cpu-usage.js';
import { DeliveryPool } from './deliveries.js';
import { driveWebhooks, type RoundResult } from './load.js';

/** One HTTP server the rounds are driven against. */
export interface Target {
  /** `baseline`: bare Koa; `naive`: Koa + verify + `Queue.add`; `inlet ×N`: N ingest processes. */
  name: string;
  baseUrl: string;
  pid: number;
}

export interface RoundsSettings {
  pairs: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
  secret: string;
  /** The bench's Redis, emptied before each round so that every round starts alike. */
  redis: Redis;
  redisPid: number;
  log: (line: string) => void;
}

/** CPU seconds per request over a round: the server's, Redis', and the rest of the machine. */
export interface RoundCpu {
  serverUs: number;
  redisUs: number;
  generatorUs: number;
  /** Share of the machine (all cores) used by processes outside the bench during the round. */
  otherShare: number;
}

export interface IngestRound {
  target: Target['name'];
  /** 1-based; 0 for a warm-up. */
  pair: number;
  result: RoundResult;
  cpu: RoundCpu;
}

/** A first guess of the request rate, to size the first pool; later pools use measured rates. */
const FIRST_GUESS_PER_SECOND = 8_000;

/**
 * Alternating rounds, the targets in turn, the same requests (fresh pre-signed deliveries each
 * round) and the same load generator settings, after a warm-up of each target.
 */
export async function runIngestRounds(
  targets: Target[],
  settings: RoundsSettings,
): Promise<IngestRound[]> {
  const pool = new DeliveryPool(settings.secret);
  const lastRate = new Map<string, number>();
  const round = async (target: Target, seconds: number, pair: number): Promise<IngestRound> => {
    const rate = Math.max(lastRate.get(target.name) ?? 0, FIRST_GUESS_PER_SECOND);
    pool.refill(Math.ceil(rate * seconds * 1.5) + settings.connections);
    await settings.redis.flushall();
    const meter = new CpuMeter(
      {
        server: target.pid,
        redis: settings.redisPid,
        generator: process.pid,
      },
      ['server'],
    );
    const started = performance.now();
    const result = await driveWebhooks(pool, {
      baseUrl: target.baseUrl,
      seconds,
      connections: settings.connections,
    });
    const used = meter.read();
    const elapsed = (performance.now() - started) / 1000;
    const perRequest = (name: string) => ((used[name] ?? 0) / Math.max(1, result.total)) * 1e6;
    lastRate.set(target.name, result.requestsPerSecond);
    const cpu: RoundCpu = {
      serverUs: perRequest('server'),
      redisUs: perRequest('redis'),
      generatorUs: perRequest('generator'),
      otherShare: (used.other ?? 0) / (elapsed * cpus().length),
    };
    return { target: target.name, pair, result, cpu };
  };

  for (const target of targets) {
    const warm = await round(target, settings.warmupSeconds, 0);
    settings.log(`warm-up ${target.name}: ${describe(warm)}`);
  }
  const rounds: IngestRound[] = [];
  for (let pair = 1; pair <= settings.pairs; pair++) {
    for (const target of targets) {
      const done = await round(target, settings.seconds, pair);
      rounds.push(done);
      settings.log(`round ${pair} ${target.name}: ${describe(done)}`);
    }
  }
  pool.refill(0);
  return rounds;
}

function describe({ result, cpu }: IngestRound): string {
  const problems = result.non2xx + result.errors + result.timeouts;
  return [
    `${Math.round(result.requestsPerSecond)} req/s`,
    `p50 ${result.p50.toFixed(2)} ms`,
    `p99 ${result.p99.toFixed(2)} ms`,
    `server ${Math.round(cpu.serverUs)} µs CPU/req`,
    `redis ${Math.round(cpu.redisUs)} µs/req`,
    `others ${Math.round(cpu.otherShare * 100)}% of the machine`,
    problems ? `${result.non2xx} non-2xx, ${result.errors} errors` : 'all 2xx',
    result.signedLate ? `${result.signedLate} signed late` : '',
  ]
    .filter(Boolean)
    .join(', ');
}
