/**
 * The prediction object Replicate sends in a webhook, as `GET /v1/predictions/{id}` returns it.
 * See https://replicate.com/docs/reference/http#predictions.get
 */

/** Every state a prediction can be in. */
export const PREDICTION_STATUSES = [
  'starting',
  'processing',
  'succeeded',
  'failed',
  'canceled',
  'aborted',
] as const;

export type PredictionStatus = (typeof PREDICTION_STATUSES)[number];

/** States after which a prediction never changes again; their processors run once per prediction. */
export const TERMINAL_STATUSES: ReadonlySet<PredictionStatus> = new Set([
  'succeeded',
  'failed',
  'canceled',
  'aborted',
]);

/** True for `succeeded`, `failed`, `canceled` and `aborted`. */
export function isTerminal(status: PredictionStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** True when `value` is one of {@link PREDICTION_STATUSES}. */
export function isPredictionStatus(value: unknown): value is PredictionStatus {
  return typeof value === 'string' && (PREDICTION_STATUSES as readonly string[]).includes(value);
}

/** Which deliveries Replicate sends, chosen per prediction with `webhook_events_filter`. */
export type WebhookEvent = 'start' | 'output' | 'logs' | 'completed';

/** A prediction (or a training, which comes in the same envelope). */
export interface Prediction<Input = Record<string, unknown>, Output = unknown> {
  /** Unique id of the prediction, e.g. `gm3qorzdhgbfurvjtvhg6dckhu`. */
  id: string;
  /** `owner/name` of the model. */
  model: string;
  /** Id of the model version that ran. */
  version: string;
  /** The inputs given when the prediction was created. Deleted after one hour for API predictions. */
  input: Input;
  /** Any JSON the model returned; file outputs are `replicate.delivery` URLs, valid for one hour. */
  output: Output | null;
  /** The model's logs so far. */
  logs: string | null;
  /** Why the prediction failed, when it did. */
  error: unknown;
  status: PredictionStatus;
  /** ISO 8601 times. */
  created_at: string;
  started_at?: string | null;
  completed_at?: string | null;
  urls: {
    get: string;
    cancel: string;
    stream?: string;
    web?: string;
  };
  metrics?: {
    /** Seconds the model ran. */
    predict_time?: number;
    /** Seconds from creation to completion. */
    total_time?: number;
    [metric: string]: unknown;
  };
  /** True once inputs, outputs and files were deleted. */
  data_removed?: boolean;
  /** `owner/name` of the deployment, for deployment predictions. */
  deployment?: string;
  /** The webhook URL the prediction was created with. */
  webhook?: string;
  webhook_events_filter?: WebhookEvent[];
  /** `api` or `web`. */
  source?: 'api' | 'web' | string;
  [field: string]: unknown;
}
