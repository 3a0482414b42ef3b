import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
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
    return await importModule(target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new ConfigError(`INLET_PROCESSORS: cannot find "${spec}" (${oneLine(error)})`);
    }
    const where = errorLocation(error, target) ?? syntaxErrorLocation(error, target);
    throw new ConfigError(
      `INLET_PROCESSORS: "${spec}" failed to load${where ? ` at ${where}` : ''}: ${loadMessage(error)}`,
    );
  }
}

let tsxRegistered: Promise<void> | undefined;

/** True when the running Node strips TypeScript types itself (22.18+, 23.6+; off by a flag). */
export function nodeStripsTypes(): boolean {
  return Boolean((process.features as { typescript?: unknown }).typescript);
}

/**
 * Imports a module; a TypeScript file is imported as is where Node strips types itself, else
 * through tsx's loader, registered on first need. A file Node's type stripping refuses (an
 * `enum`, a `namespace`) is loaded through tsx too.
 */
async function importModule(url: string): Promise<unknown> {
  if (!url.startsWith('file:') || !TYPESCRIPT_FILE.test(url.split('?')[0] as string)) {
    return import(url);
  }
  if (nodeStripsTypes()) {
    try {
      return await import(url);
    } catch (error) {
      // Syntax Node cannot strip (enum, namespace) runs under tsx; a syntax error is read again
      // by tsx too, whose error names the line and column.
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (!TYPESCRIPT_REFUSED.has(code)) throw error;
    }
  }
  // Both hooks: a .ts file outside a `"type": "module"` package is loaded as CommonJS.
  tsxRegistered ??= Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]).then(
    ([esm, cjs]) => {
      esm.register();
      cjs.register();
    },
  );
  await tsxRegistered;
  // A URL of its own: Node keeps a failed attempt under the plain one.
  return import(`${url}${url.includes('?') ? '&' : '?'}inlet-loader=tsx`);
}

/** Node's type stripping's own errors: syntax it does not support, or invalid TypeScript. */
const TYPESCRIPT_REFUSED = new Set([
  'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX',
  'ERR_INVALID_TYPESCRIPT_SYNTAX',
]);

const TYPESCRIPT_FILE = /\.(m|c)?ts$/;

/**
 * Where a module failed to load, as `file:line:column`, when the error tells: esbuild (tsx)
 * lists locations; Node's syntax errors start their stack with `file:line`, the source line and
 * a caret under the column; an error thrown while the module runs names it in a stack frame.
 */
function errorLocation(error: unknown, url: string): string | undefined {
  const located = (error as { errors?: Array<{ location?: EsbuildLocation }> }).errors?.[0]
    ?.location;
  if (located?.file) return `${located.file}:${located.line}:${located.column + 1}`;
  // esbuild (tsx) writes `file:line:column:` with a column counted from 0.
  const esbuild = /(\/[^\s:]+):(\d+):(\d+): ERROR/.exec(String((error as Error)?.message ?? ''));
  if (esbuild) return `${esbuild[1]}:${esbuild[2]}:${Number(esbuild[3]) + 1}`;
  const stack = String((error as Error)?.stack ?? '');
  const file = url.startsWith('file:') ? fileURLToPath(url.split('?')[0] as string) : url;
  const head = /^(file:\/\/\S+?|\/\S+?):(\d+)\n(.*)\n(\s*)\^/.exec(stack);
  if (head) return `${shownPath(head[1] as string)}:${head[2]}:${(head[4] as string).length + 1}`;
  const bare = url.split('?')[0] as string;
  for (const match of stack.matchAll(/(file:\/\/[^\s)]+?|\/[^\s:)]+):(\d+):(\d+)/g)) {
    const path = shownPath(match[1] as string);
    if (match[1]?.split('?')[0] === bare || path === file) return `${path}:${match[2]}:${match[3]}`;
  }
  return undefined;
}

/**
 * Node's syntax errors from `import()` carry no location; `node --check` prints it (a second
 * parse, paid only when loading already failed).
 */
function syntaxErrorLocation(error: unknown, url: string): string | undefined {
  if (!(error instanceof SyntaxError) || !url.startsWith('file:')) return undefined;
  const file = fileURLToPath(url.split('?')[0] as string);
  const check = spawnSync(process.execPath, ['--check', file], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const head = /^(\S+?):(\d+)\n(.*)\n(\s*)\^/.exec(check.stderr ?? '');
  return head
    ? `${shownPath(head[1] as string)}:${head[2]}:${(head[4] as string).length + 1}`
    : undefined;
}

/** The error's first line; esbuild's own text rather than its "Transform failed" header. */
function loadMessage(error: unknown): string {
  const text = (error as { errors?: Array<{ text?: string }> }).errors?.[0]?.text;
  if (text) return oneLine({ message: text });
  const esbuild = /: ERROR: (.*)/.exec(String((error as Error)?.message ?? ''));
  return esbuild ? (esbuild[1] as string) : oneLine(error);
}

interface EsbuildLocation {
  file: string;
  line: number;
  column: number;
}

function shownPath(location: string): string {
  return location.startsWith('file:') ? fileURLToPath(location.split('?')[0] as string) : location;
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
