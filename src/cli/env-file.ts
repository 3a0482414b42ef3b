import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { ConfigError } from '../core/config-error.js';

/**
 * Reads `.env` of the working directory into `process.env`, as Node's `--env-file` would but
 * optional: variables already set in the real environment win. Returns the names it set, or
 * `undefined` when there is no `.env`.
 */
export function loadDotEnv(cwd = process.cwd()): { file: string; set: string[] } | undefined {
  const file = join(cwd, '.env');
  if (!existsSync(file)) return undefined;
  let parsed: NodeJS.Dict<string>;
  try {
    parsed = parseEnv(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const set: string[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (value === undefined || process.env[name] !== undefined) continue;
    process.env[name] = value;
    set.push(name);
  }
  return { file, set };
}
