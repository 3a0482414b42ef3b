import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../core/config.js';
import { isPredictionStatus } from '../core/prediction.js';
import type { Processor } from './processor.js';

/**
 * Loads the processor modules named in `INLET_PROCESSORS` and checks them before the worker takes
 * a job: each spec is a file path (relative to `cwd`) or a package name, and its default export
 * must be a processor with a `name` and a `handle`. Names must be unique: they key the ledger.
 * Throws {@link ConfigError} with one line naming the spec and what to fix.
 */
export async function loadProcessors(specs: string[], cwd = process.cwd()): Promise<Processor[]> {
  const processors: Processor[] = [];
  const seen = new Map<string, string>();
  for (const spec of specs) {
    const processor = checkProcessor(spec, await importSpec(spec, cwd));
    const earlier = seen.get(processor.name);
    if (earlier !== undefined) {
      throw new ConfigError(
        `INLET_PROCESSORS: "${spec}" and "${earlier}" are both named "${processor.name}"; processor names must be unique`,
      );
    }
    seen.set(processor.name, spec);
    processors.push(processor);
  }
  return processors;
}

/** File paths start with `.` or `/` or name a script; anything else is a package name. */
function isPath(spec: string): boolean {
  return (
    spec.startsWith('.') || isAbsolute(spec) || /\.(m|c)?(j|t)s$/.test(spec) || spec.includes('\\')
  );
}

async function importSpec(spec: string, cwd: string): Promise<unknown> {
  let target: string;
  if (isPath(spec)) {
    const file = resolve(cwd, spec);
    if (!existsSync(file)) {
      throw new ConfigError(`INLET_PROCESSORS: cannot find "${spec}" (looked for ${file})`);
    }
    target = pathToFileURL(file).href;
  } else {
    target = resolvePackage(spec, cwd);
  }
  try {
    return await import(target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      throw new ConfigError(
        `INLET_PROCESSORS: cannot import "${spec}" as is; compile it to JavaScript or run inlet with node --import tsx`,
      );
    }
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new ConfigError(`INLET_PROCESSORS: cannot find "${spec}" (${oneLine(error)})`);
    }
    throw new ConfigError(`INLET_PROCESSORS: "${spec}" failed to load: ${oneLine(error)}`);
  }
}

/** Resolves a package from the user's folder first, then from inlet's own. */
function resolvePackage(spec: string, cwd: string): string {
  try {
    return pathToFileURL(createRequire(resolve(cwd, 'package.json')).resolve(spec)).href;
  } catch {
    // ESM-only packages have no `require` entry; let import() resolve them (from inlet's folder).
    return spec;
  }
}

function checkProcessor(spec: string, module: unknown): Processor {
  let candidate = (module as { default?: unknown } | undefined)?.default;
  // A CommonJS module compiled from `export default` arrives as `{ default: { default } }`.
  if (isObject(candidate) && !('handle' in candidate) && isObject(candidate.default)) {
    candidate = candidate.default;
  }
  const fail = (what: string) => {
    throw new ConfigError(`INLET_PROCESSORS: "${spec}" ${what}`);
  };
  if (!isObject(candidate))
    return fail('has no default export; export default defineProcessor({ … })');
  const { name, handle, statuses, timeoutMs } = candidate as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim() === '')
    return fail('has no `name` (a non-empty string)');
  if (typeof handle !== 'function') return fail(`(${name}) has no \`handle\` function`);
  if (statuses !== undefined) {
    if (!Array.isArray(statuses) || statuses.length === 0) {
      return fail(`(${name}): \`statuses\` must be a non-empty list, or left out for every state`);
    }
    const unknown = statuses.find((s) => !isPredictionStatus(s));
    if (unknown !== undefined) {
      return fail(`(${name}): unknown status ${JSON.stringify(unknown)} in \`statuses\``);
    }
  }
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && (timeoutMs as number) > 0)) {
    return fail(`(${name}): \`timeoutMs\` must be a positive whole number of milliseconds`);
  }
  return candidate as unknown as Processor;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function oneLine(error: unknown): string {
  return ((error as Error)?.message ?? String(error)).split('\n')[0] ?? 'unknown error';
}
