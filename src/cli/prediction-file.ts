import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/config.js';
import { isPredictionStatus, type Prediction } from '../core/prediction.js';

/**
 * Reads the user's own prediction(s) for `inlet send --data` and `inlet replay --rerun --data`:
 * a JSON object, or an array of them, from a file or from stdin (`-`). Each needs an `id` and a
 * `status`, as Replicate sends them; everything else is passed on as written.
 */
export function readPredictionData(source: string): Prediction[] {
  const where = source === '-' ? 'stdin' : source;
  let text: string;
  try {
    text = readFileSync(source === '-' ? 0 : source, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `--data: cannot read ${where} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`--data: ${where} is not JSON: ${(error as Error).message}`);
  }
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new ConfigError(`--data: ${where} holds an empty list`);
  for (const [index, item] of items.entries()) {
    checkPrediction(item, Array.isArray(value) ? `${where}[${index}]` : where);
  }
  return items as Prediction[];
}

function checkPrediction(item: unknown, where: string): void {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new ConfigError(`--data: ${where} is not a prediction object`);
  }
  const { id, status } = item as Record<string, unknown>;
  if (typeof id !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(id)) {
    throw new ConfigError(
      `--data: ${where} needs an "id": letters, digits, _ . : - (up to 200), as Replicate's ids`,
    );
  }
  if (!isPredictionStatus(status)) {
    throw new ConfigError(
      `--data: ${where} (${id}) needs a "status": starting, processing, succeeded, failed, canceled or aborted`,
    );
  }
}
