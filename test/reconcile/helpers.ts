import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/core/logger.js';
import type { Prediction, PredictionStatus } from '../../src/core/prediction.js';
import { samplePrediction } from '../support/deliveries.js';

/** A prediction created `minutesAgo` and, when terminal, completed a minute after. */
export function predictionAt(
  status: PredictionStatus,
  minutesAgo: number,
  id?: string,
): Prediction {
  const prediction = samplePrediction(status, id);
  const created = Date.now() - minutesAgo * 60_000;
  prediction.created_at = new Date(created).toISOString();
  prediction.started_at = new Date(created + 1000).toISOString();
  prediction.completed_at =
    prediction.completed_at === null ? null : new Date(created + 60_000).toISOString();
  return prediction;
}

/** A logger whose JSON lines a test can read back. */
export function capturedLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write: (chunk, _encoding, done) => {
        for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    }),
  );
  return { logger, lines };
}
