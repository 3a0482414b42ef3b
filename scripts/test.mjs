#!/usr/bin/env node
// `npm test`: runs every test file under test/ except the suites that have their own script
// (test/browser, test/docker, test/chaos and test/pack need Chromium, Docker, minutes of load or
// a packed tarball), several files at once, and prints the wall time. Extra arguments go to
// `node --test`; a file list replaces the selection: `npm test -- test/workers/backoff.test.ts`.
//
// The tests run as JavaScript: esbuild first writes src/ and test/ to build/ (type-free, about a
// second; `tsc --noEmit` checks the types). Under tsx's loader each test process spent about
// 0.7 s more CPU, mostly on hooks run for every module it loads, which on two cores was a fifth
// of the suite. Fixtures are still read from test/ (test/support/paths.ts).
//
// esbuild also writes dist/, the package's JavaScript that the CLI tests run (`npx inlet`), file
// for file as `npm run build` (tsc) writes it but without the type declarations, which no test
// reads: tsc's emit took 7 s of the run's wall time and 11 s of CPU. `npm run build` (run by
// `npm pack`, the Dockerfile, test:docker and test:pack) still makes the published dist/.
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const OWN_SCRIPT = new Set(['test/docker', 'test/chaos', 'test/pack', 'test/browser']);
const OUT = 'build';

/** Every file below `dir` whose name ends with `suffix`, sorted, skipping `skip`'s folders. */
function filesBelow(dir, suffix, skip = new Set()) {
  if (skip.has(dir)) return [];
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesBelow(path, suffix, skip));
    else if (entry.name.endsWith(suffix)) files.push(path);
  }
  return files.sort();
}

/**
 * Files that took 10 s or more in a measured run start first, so that the longest ones do not
 * start last and leave the other slots idle at the end. Only the order depends on this list.
 */
const LONG_FIRST = [
  'test/workers/graceful-stop.test.ts',
  'test/cli/dev.test.ts',
  'test/cli/replay.test.ts',
  'test/cli/own-project.test.ts',
  'test/workers/in-process.test.ts',
  'test/cli/commands.test.ts',
  'test/workers/crash-safety.test.ts',
  'test/cli/ingest-processes.test.ts',
  'test/ingest/store-deadline.test.ts',
];

const rank = (file) => {
  const at = LONG_FIRST.indexOf(file);
  return at === -1 ? LONG_FIRST.length : at;
};

const args = process.argv.slice(2);
const named = args.filter((a) => a.endsWith('.ts'));
const options = args.filter((a) => !a.endsWith('.ts'));
const sources = named.length > 0 ? named : filesBelow('test', '.test.ts', OWN_SCRIPT);
const files = sources
  .sort((a, b) => rank(a) - rank(b))
  .map((file) => join(OUT, file.replace(/\.ts$/, '.js')));

const started = process.hrtime.bigint();
rmSync(OUT, { recursive: true, force: true });
rmSync('dist', { recursive: true, force: true });
const common = { format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' };
await Promise.all([
  build({
    ...common,
    entryPoints: [...filesBelow('src', '.ts'), ...filesBelow('test', '.ts')],
    outdir: OUT,
    outbase: '.',
    sourcemap: 'linked',
  }),
  build({ ...common, entryPoints: filesBelow('src', '.ts'), outdir: 'dist', outbase: 'src' }),
]);

// Integration tests spend much of their time waiting (on child processes, Redis, lock expiry and
// grace periods), so three files per core keep the cores busy: on 2 cores, 80-89 s against
// 90-93 s with two per core. INLET_TEST_CONCURRENCY overrides it.
const concurrency =
  process.env.INLET_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism() * 3));
const child = spawn(
  process.execPath,
  ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, ...options, ...files],
  { stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `npm test: ${files.length} files, concurrency ${concurrency}, wall time ${seconds.toFixed(1)} s`,
  );
  process.exit(code ?? (signal ? 1 : 0));
});
