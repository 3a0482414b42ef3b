/**
 * inlet's public API: what a processor module and an integrating program import.
 * @packageDocumentation
 */
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
