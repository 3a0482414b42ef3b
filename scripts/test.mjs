#!/usr/bin/env node
// `npm test`: runs every test file under test/ except the suites that have their own script
// (test/browser, test/docker, test/chaos and test/pack need Chromium, Docker, minutes of load or
// a packed tarball), several files at once, and prints the wall time. A file list replaces the
// selection (`npm test -- test/workers/backoff.test.ts`); `--test-name-pattern=<re>` and
// `--test-reporter=<name or module>` work as for `node --test`.
//
// The files run through node:test's run(), not the `node --test` command, because that command
// sorts its files by name, and then the slow ones did not start first (LONG_FIRST below): in one
// measured run graceful-stop started at 66 s and shutdown-unreachable at 79 s, and the suite
// ended with them alone on the cores.
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
import { readdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { run } from 'node:test';
import { dot, junit, lcov, spec, tap } from 'node:test/reporters';
import { pathToFileURL } from 'node:url';
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
 * Files that spend the longest waiting (on child processes, lock expiry, grace periods) start
 * first, so that their waits overlap the other files' work instead of ending the run alone.
 * Ordered by wall time in this suite's runs on a 2-core host, one file at a time and all at once
 * (the two disagree on a loaded host); only the order depends on it.
 */
const LONG_FIRST = [
  'test/workers/graceful-stop.test.ts',
  'test/workers/shutdown-unreachable.test.ts',
  'test/ingest/store-deadline.test.ts',
  'test/workers/in-process.test.ts',
  'test/cli/dev.test.ts',
  'test/workers/crash-safety.test.ts',
  'test/cli/replay.test.ts',
  'test/cli/own-project.test.ts',
  'test/workers/once-per-prediction.test.ts',
  'test/workers/heartbeat.test.ts',
  'test/e2e/pipeline.test.ts',
  'test/ingest/fuzz.test.ts',
  'test/cli/ingest-processes.test.ts',
];

const rank = (file) => {
  const at = LONG_FIRST.indexOf(file);
  return at === -1 ? LONG_FIRST.length : at;
};

const args = process.argv.slice(2);
const named = args.filter((a) => a.endsWith('.ts'));
const option = (name) => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
const unknown = args.filter(
  (a) =>
    !a.endsWith('.ts') &&
    !a.startsWith('--test-name-pattern=') &&
    !a.startsWith('--test-reporter='),
);
if (unknown.length > 0) {
  console.error(
    `npm test: ${unknown.join(' ')}: give test files, --test-name-pattern=<re> or --test-reporter=<name>`,
  );
  process.exit(2);
}
const sources = named.length > 0 ? named : filesBelow('test', '.test.ts', OWN_SCRIPT);
const files = sources
  .sort((a, b) => rank(a) - rank(b))
  .map((file) => resolve(OUT, file.replace(/\.ts$/, '.js')));

/** `node --test`'s reporter: the one named, else spec on a terminal and TAP elsewhere. */
async function reporter(name = process.stdout.isTTY ? 'spec' : 'tap') {
  const builtIn = { dot, junit, lcov, spec, tap };
  if (Object.hasOwn(builtIn, name)) return builtIn[name];
  const module = await import(name.startsWith('.') ? pathToFileURL(resolve(name)).href : name);
  return module.default;
}

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
const concurrency = Number(
  process.env.INLET_TEST_CONCURRENCY ?? Math.max(2, availableParallelism() * 3),
);
const pattern = option('--test-name-pattern');
// A file whose process outlives this fails, its process killed, instead of holding the run (and
// CI) for ever: a cluster test's process once never exited after its tests had passed, kept
// alive by a timer a closed client had left (src/core/redis.ts, StoppingCluster). Far above any
// file's run: the whole suite has taken 45-118 s on 2-core hosts.
const FILE_TIMEOUT_MS = 10 * 60_000;
// Each file runs in a child process with this one's Node options (package.json gives
// --enable-source-maps), as `node --test` runs them.
const stream = run({
  files,
  concurrency,
  timeout: FILE_TIMEOUT_MS,
  ...(pattern ? { testNamePatterns: [new RegExp(pattern)] } : {}),
});
stream.on('test:fail', (event) => {
  if (!event.todo) process.exitCode = 1;
});
const output = stream.compose(await reporter(option('--test-reporter')));
output.pipe(process.stdout, { end: false });
output.on('end', () => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `npm test: ${files.length} files, concurrency ${concurrency}, wall time ${seconds.toFixed(1)} s`,
  );
});
