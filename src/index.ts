/**
 * inlet's public API: what a processor module and an integrating program import.
 * @packageDocumentation
 */

import { bullmq } from './core/commonjs-packages.js';

/**
 * Throw it from a processor to dead-letter the delivery at once, without further tries: for
 * errors no retry can fix (the prediction's input is invalid for your system, say).
 * `inlet replay` re-drives it once you have fixed the cause. BullMQ's own class, re-exported.
 */
export const UnrecoverableError = bullmq.UnrecoverableError;
export type UnrecoverableError = import('bullmq').UnrecoverableError;
export type { DeliveryJob } from './core/job.js';
export {
  isTerminal,
  PREDICTION_STATUSES,
  type Prediction,
  type PredictionStatus,
  TERMINAL_STATUSES,
  type WebhookEvent,
} from './core/prediction.js';
export {
  decodeSecret,
  type HeaderBag,
  signWebhook,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyResult,
  verifyWebhook,
} from './ingest/signature.js';
export {
  defineProcessor,
  type Processor,
  type ProcessorContext,
} from './workers/processor.js';
