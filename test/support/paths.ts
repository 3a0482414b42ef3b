import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder at or above `dir` that holds a package.json. */
function packageRoot(dir: string): string {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, 'package.json'))) return at;
    if (dirname(at) === at) throw new Error(`no package.json above ${dir}`);
  }
}

/**
 * The checkout's root, where `package.json` lives: found from this file whether it runs from
 * test/ (under tsx) or from `npm test`'s transpiled copy in build/ (scripts/test.mjs).
 */
export const ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));

/** The built CLI entry, exactly what `npx inlet` and the Dockerfile run (`npm test` builds it). */
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

/** A file of the test tree in the checkout (fixtures are read from there, never from build/). */
export const testFile = (...parts: string[]) => join(ROOT, 'test', ...parts);
