import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The rules of the layout that keep the flow readable (CONTRIBUTING.md, Layout). Import cycles
 * are checked by `npm run check:cycles`.
 */

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import of `file`, as a path from the repository root, `.js` read as `.ts`. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)];
  return found.map((m) =>
    relative('.', resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'))),
  );
}

const files = sources('src');

describe('the source layout', () => {
  it('nothing inside src imports the public entry, src/index.ts', () => {
    const offenders = files.filter((file) => imports(file).includes('src/index.ts'));
    assert.deepEqual(offenders, []);
  });

  it('the ingest and the workers never import each other; they share src/core', () => {
    const crossing = files.flatMap((file) => {
      const side = file.startsWith('src/ingest/')
        ? 'ingest'
        : file.startsWith('src/workers/')
          ? 'workers'
          : undefined;
      if (!side) return [];
      const other = side === 'ingest' ? 'src/workers/' : 'src/ingest/';
      return imports(file)
        .filter((target) => target.startsWith(other))
        .map((target) => `${file} -> ${target}`);
    });
    assert.deepEqual(crossing, []);
  });

  it('src/core imports nothing outside src/core', () => {
    const outward = files
      .filter((file) => file.startsWith('src/core/'))
      .flatMap((file) =>
        imports(file)
          .filter((t) => !t.startsWith('src/core/'))
          .map((t) => `${file} -> ${t}`),
      );
    assert.deepEqual(outward, []);
  });
});
