import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * `/metrics` when the ingest runs as several processes (`INLET_INGEST_PROCESSES`): every process
 * counts its own deliveries, so a scrape answered by one process alone would show a fraction of
 * them. The process that takes the scrape asks the cluster primary, which gathers every
 * process's registry over IPC with prom-client's {@link AggregatorRegistry} and answers with the
 * sum (the Redis-read figures, the same in every process, are aggregated with `max`).
 */
const ASK = 'inlet:metrics-request';
const ANSWER = 'inlet:metrics-answer';
const TIMEOUT_MS = 5_000;

interface Answer {
  type: typeof ANSWER;
  id: number;
  text?: string;
  error?: string;
}

let asked = 0;

/** In a cluster worker: hands `registry` to the primary's aggregation. */
export function shareWithPrimary(registry: Registry): void {
  // The constructor installs prom-client's IPC listener; setRegistries says what it reports.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}

/** In a cluster worker: the metrics of every ingest process, as the primary aggregated them. */
export function clusterMetricsText(): Promise<string> {
  const send = process.send?.bind(process);
  if (!send) return Promise.reject(new Error('not a cluster worker'));
  asked += 1;
  const id = asked;
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      const answer = message as Partial<Answer> | null;
      if (answer?.type !== ANSWER || answer.id !== id) return;
      done();
      if (answer.text !== undefined) resolve(answer.text);
      else reject(new Error(answer.error ?? 'no metrics from the primary'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error('the primary did not answer with metrics in time'));
    }, TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
    };
    process.on('message', onMessage);
    send({ type: ASK, id });
  });
}

/** In the cluster primary: answers the workers' requests for the aggregated metrics. */
export function answerMetricsRequests(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: unknown; id?: unknown }) => {
    if (message?.type !== ASK || typeof message.id !== 'number') return;
    const id = message.id;
    const reply = (answer: Omit<Answer, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: ANSWER, id, ...answer });
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (error: Error) => reply({ error: error.message }),
    );
  });
}
