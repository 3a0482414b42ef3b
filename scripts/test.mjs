#!/usr/bin/env node
// `npm test`: runs every test file under test/ except the suites that have their own script
// (test/docker, test/chaos, test/pack need Docker, minutes of load or a packed tarball), several
// files at once, and prints the wall time. Extra arguments go to `node --test` (e.g. a file list
// replaces the selection: `npm test -- test/workers/backoff.test.ts`).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const OWN_SCRIPT = new Set(['test/docker', 'test/chaos', 'test/pack']);

/** Every `*.test.ts` below `dir`, sorted, skipping the folders of OWN_SCRIPT. */
function testFiles(dir) {
  if (OWN_SCRIPT.has(dir)) return [];
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...testFiles(path));
    else if (entry.name.endsWith('.test.ts')) files.push(path);
  }
  return files.sort();
}

/**
 * Files that took 20 s or more in a measured run start first, so that the longest ones do not
 * start last and leave the other slots idle at the end. Only the order depends on this list.
 */
const LONG_FIRST = [
  'test/workers/crash-safety.test.ts',
  'test/workers/graceful-stop.test.ts',
  'test/cli/commands.test.ts',
  'test/cli/replay.test.ts',
  'test/cli/dev.test.ts',
];

const rank = (file) => {
  const at = LONG_FIRST.indexOf(file);
  return at === -1 ? LONG_FIRST.length : at;
};

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith('.ts'))
  ? []
  : testFiles('test').sort((a, b) => rank(a) - rank(b));
// Integration tests spend most of their time waiting on child processes and Redis, so two files
// per core keeps the cores busy; INLET_TEST_CONCURRENCY overrides it.
const concurrency =
  process.env.INLET_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism() * 2));
const started = process.hrtime.bigint();
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...args, ...files],
  { stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `npm test: ${files.length || 'given'} files, concurrency ${concurrency}, wall time ${seconds.toFixed(1)} s`,
  );
  process.exit(code ?? (signal ? 1 : 0));
});
