import { isPredictionStatus, type Prediction, type PredictionStatus } from '../core/prediction.js';
import {
  newPredictionId,
  newWebhookId,
  samplePrediction,
  TERMINAL_ROTATION,
} from '../core/sample-prediction.js';

/**
 * What `inlet send` will deliver, decided before anything is sent: which predictions, which
 * statuses in which order, which deliveries are repeats. Pure, so the plan is testable apart
 * from the network.
 */

/** A status list entry: a real status, or `all` (a whole life, ending in each terminal in turn). */
export type StatusChoice = PredictionStatus | 'all';

/** One HTTP request to make. A repeat has the `webhook-id` and body of the delivery it repeats. */
export interface PlannedDelivery {
  webhookId: string;
  predictionId: string;
  status: PredictionStatus;
  /** The JSON body, serialised once: what is signed is what is sent. */
  body: string;
  /** 0 for the delivery itself, 1… for its repeats (Replicate's retries of one message). */
  repeat: number;
}

export interface PlanOptions {
  statuses: StatusChoice[];
  /** How many predictions, when their ids are not given. */
  count: number;
  /** The predictions' ids, one prediction each; `count` new random ids otherwise. */
  predictionIds?: string[];
  /** Extra times each delivery is sent with the same `webhook-id`. */
  duplicates: number;
  /** The URL the predictions were "created" with, echoed in their `webhook` field. */
  url: string;
}

/**
 * Deliveries grouped in sequences: the requests of one sequence are sent one after another, in
 * order, as Replicate sends one prediction's events; sequences run side by side.
 */
export function planDeliveries(options: PlanOptions): PlannedDelivery[][] {
  const sequences: PlannedDelivery[][] = [];
  const ids = options.predictionIds ?? Array.from({ length: options.count }, newPredictionId);
  for (const [index, predictionId] of ids.entries()) {
    const createdAt = new Date(Date.now() - 4_000);
    const sequence: PlannedDelivery[] = [];
    for (const status of expandStatuses(options.statuses, index)) {
      const prediction = samplePrediction({
        id: predictionId,
        status,
        webhook: options.url,
        createdAt,
      });
      const delivery = {
        webhookId: newWebhookId(),
        predictionId,
        status,
        body: JSON.stringify(prediction),
      };
      for (let repeat = 0; repeat <= options.duplicates; repeat++)
        sequence.push({ ...delivery, repeat });
    }
    sequences.push(sequence);
  }
  return sequences;
}

/**
 * Deliveries of the user's own predictions (`--data`): one sequence per prediction id, in the
 * order given, each with a new `webhook-id` and the object sent exactly as written.
 */
export function planGivenDeliveries(
  predictions: Prediction[],
  duplicates: number,
): PlannedDelivery[][] {
  const byId = new Map<string, PlannedDelivery[]>();
  for (const prediction of predictions) {
    const sequence = byId.get(prediction.id) ?? [];
    byId.set(prediction.id, sequence);
    const delivery = {
      webhookId: newWebhookId(),
      predictionId: prediction.id,
      status: prediction.status,
      body: JSON.stringify(prediction),
    };
    for (let repeat = 0; repeat <= duplicates; repeat++) sequence.push({ ...delivery, repeat });
  }
  return [...byId.values()];
}

/** Every delivery of a plan as its own sequence, in random order: Replicate promises no order. */
export function shuffled(sequences: PlannedDelivery[][]): PlannedDelivery[][] {
  const all = sequences.flat();
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [all[i], all[j]] = [all[j] as PlannedDelivery, all[i] as PlannedDelivery];
  }
  return all.map((delivery) => [delivery]);
}

/** The statuses prediction number `index` goes through. */
function expandStatuses(statuses: StatusChoice[], index: number): PredictionStatus[] {
  return statuses.flatMap((status): PredictionStatus[] =>
    status === 'all'
      ? [
          'starting',
          'processing',
          TERMINAL_ROTATION[index % TERMINAL_ROTATION.length] as PredictionStatus,
        ]
      : [status],
  );
}

/**
 * Parses `--status`: comma-separated statuses, or `all`. Throws an Error whose message is the
 * one line to show.
 */
export function parseStatuses(text: string): StatusChoice[] {
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw new Error('expected at least one status');
  for (const item of items) {
    if (item !== 'all' && !isPredictionStatus(item)) {
      throw new Error(
        `"${item}" is not a status: use starting, processing, succeeded, failed, canceled, aborted or all`,
      );
    }
  }
  if (items.includes('all') && items.length > 1) throw new Error('"all" stands alone');
  return items as StatusChoice[];
}

/** Parses `--prediction`: one or more prediction ids, comma-separated. */
export function parsePredictionIds(text: string): string[] {
  const ids = text.split(',').map((id) => id.trim());
  const bad = ids.find((id) => !/^[A-Za-z0-9_.:-]{1,200}$/.test(id));
  if (bad !== undefined) {
    throw new Error(
      `"${bad}" is not a prediction id: expected letters, digits, _ . : - (up to 200)`,
    );
  }
  return ids;
}
