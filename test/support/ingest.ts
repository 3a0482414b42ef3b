import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../src/core/config.js';
import type { Logger } from '../../src/core/logger.js';
import { type IngestOptions, type IngestServer, startIngest } from '../../src/ingest/server.js';
import { waitFor } from './wait-for.js';

/** Log lines a test can read back, as parsed JSON objects. */
export class CapturedLogs {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly logger: Logger = pino(
    { level: 'debug' },
    new Writable({
      write: (chunk, _encoding, done) => {
        for (const line of String(chunk).split('\n')) if (line) this.lines.push(JSON.parse(line));
        done();
      },
    }),
  );

  get text(): string {
    return this.lines.map((line) => JSON.stringify(line)).join('\n');
  }
}

/**
 * {@link startIngest}, resolved once `/readyz` says Redis answers, as a load balancer would wait:
 * before that (a cold connection on a busy machine), deliveries may be answered 503.
 */
export async function startReadyIngest(options: IngestOptions): Promise<IngestServer> {
  const ingest = await startIngest(options);
  try {
    await waitFor('the test ingest ready (Redis unreachable?)', async () => {
      const response = await fetch(`${ingest.url}/readyz`);
      await response.arrayBuffer();
      return response.ok;
    });
  } catch (error) {
    await ingest.close();
    throw error;
  }
  return ingest;
}

/**
 * A real ingest on a free port of 127.0.0.1, configured like a user would through the
 * environment. `env` is merged over a test default; logs are captured. Resolves once ready.
 */
export async function startTestIngest(
  env: Record<string, string>,
  extra: Partial<IngestOptions> = {},
): Promise<IngestServer & { logs: CapturedLogs; webhookUrl: string }> {
  const logs = new CapturedLogs();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', ...env });
  const ingest = await startReadyIngest({
    config,
    logger: logs.logger,
    drainTimeoutMs: 2000,
    ...extra,
  });
  return Object.assign(ingest, { logs, webhookUrl: `${ingest.url}/webhooks/replicate` });
}
