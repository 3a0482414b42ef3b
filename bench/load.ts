import autocannon from 'autocannon';
import type { DeliveryPool } from './deliveries.js';

/** What one round of load measured. */
export interface RoundResult {
  requestsPerSecond: number;
  /** Latency percentiles, milliseconds. */
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Deliveries signed during the round because the pre-signed pool ran dry. */
  signedLate: number;
}

export interface LoadSettings {
  /** e.g. `http://127.0.0.1:4000` */
  baseUrl: string;
  seconds: number;
  /** Stop after this many requests (before `seconds` if they are sent sooner). */
  amount?: number;
  connections: number;
  /** Requests per second over all connections; unset sends as fast as answers come. */
  overallRate?: number;
  /** Told of every answered delivery with the wall-clock time its answer arrived, ms. */
  onAnswer?: (status: number, body: string, atMs: number) => void;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Drives `POST /webhooks/replicate` with autocannon: every request is the next signed delivery
 * from `pool`, so no two requests share a `webhook-id`.
 */
export async function driveWebhooks(pool: DeliveryPool, settings: LoadSettings) {
  const onAnswer = settings.onAnswer;
  // autocannon's percentiles are whole milliseconds; the ingest's p99 target compares two
  // servers at 8-10 ms. Without a rate, its latencies are taken as measured instead.
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${settings.baseUrl}/webhooks/replicate`,
        connections: settings.connections,
        duration: settings.seconds,
        ...(settings.amount === undefined ? {} : { amount: settings.amount }),
        overallRate: settings.overallRate,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            setupRequest: (request) => {
              const delivery = pool.take();
              return { ...request, headers: delivery.headers, body: delivery.body };
            },
            onResponse: onAnswer
              ? (status, body) => onAnswer(status, body, wallClockMs())
              : undefined,
          },
        ],
      },
      (error, done) => (error ? reject(error) : resolve(done)),
    );
    if (settings.overallRate === undefined) {
      instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
    }
  });
  latencies.sort((a, b) => a - b);
  const round: RoundResult = {
    requestsPerSecond: result.requests.total / result.duration,
    p50: percentile(latencies, 0.5) ?? result.latency.p50,
    p99: percentile(latencies, 0.99) ?? result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    signedLate: pool.signedLate,
  };
  return round;
}

/**
 * The nearest-rank percentile `p` (0-1) of ascending `sorted`, as autocannon's histogram reads
 * it; undefined when there is none.
 */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}
