import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

/**
 * The process logger batches its lines into writes of a few KiB (src/core/logger.ts). A line
 * below that still reaches stdout within the flush interval, and before `process.exit` when the
 * caller flushes: checked in a child process whose stdout is a pipe, as under Docker or systemd.
 */

const LOGGER = pathToFileURL('src/core/logger.ts').href;

/** Runs `body` in a child with the logger imported; resolves with its stdout lines and signal. */
function child(body: string): Promise<{ lines: string[]; signal: NodeJS.Signals | null }> {
  const script = `import { createLogger, flushLogger, logLine } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ level: 'info' });
${body}`;
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
    });
    proc.on('error', reject);
    proc.on('close', (_code, signal) =>
      resolve({ lines: out.split('\n').filter(Boolean), signal }),
    );
  });
}

describe('the process logger', () => {
  it('writes a lone line within its flush interval, with nothing else to fill the batch', async () => {
    // Killed 500 ms later with SIGKILL: only a line written by then reaches the pipe.
    const { lines, signal } = await child(`logger.info('alone');
setTimeout(() => process.kill(process.pid, 'SIGKILL'), 500);`);
    assert.equal(signal, 'SIGKILL');
    assert.equal(lines.length, 1);
    assert.equal(JSON.parse(lines[0] as string).msg, 'alone');
  });

  it('writes every buffered line when flushed before process.exit', async () => {
    const { lines } = await child(`for (let i = 0; i < 100; i++) logger.info({ i }, 'line');
await flushLogger(logger);
process.exit(0);`);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).i),
      Array.from({ length: 100 }, (_, i) => i),
    );
  });

  it('writes every buffered line when the process exits without flushing', async () => {
    const { lines } = await child(`for (let i = 0; i < 100; i++) logger.info({ i }, 'line');
process.exit(0);`);
    assert.equal(lines.length, 100);
    assert.equal(JSON.parse(lines[99] as string).i, 99);
  });

  it('keeps the order of lines written by pino and by logLine, over several batches', async () => {
    const { lines } = await child(`for (let i = 0; i < 400; i++) {
  if (i % 3 === 0) logger.warn({ i }, 'pino');
  else logLine(logger, 'info', { i, pad: 'x'.repeat(i) }, 'logLine');
}
await flushLogger(logger);
process.exit(0);`);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).i),
      Array.from({ length: 400 }, (_, i) => i),
    );
    assert.equal(JSON.parse(lines[3] as string).msg, 'pino');
    assert.equal(JSON.parse(lines[4] as string).msg, 'logLine');
  });

  it('goes on without its lines when the reader of its pipe goes away', {
    timeout: 20_000,
  }, async () => {
    const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ level: 'info' });
const started = Date.now();
const tick = setInterval(() => {
  for (let i = 0; i < 200; i++) logger.info({ i }, 'line');
  if (Date.now() - started > 1500) {
    clearInterval(tick);
    process.stderr.write('still running');
  }
}, 10);`;
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr.on('data', (chunk) => {
      err += chunk;
    });
    // The first lines arrive, then the reader goes: the next writes fail with EPIPE.
    proc.stdout.once('data', () => proc.stdout.destroy());
    const [code] = (await once(proc, 'close')) as [number | null];
    assert.equal(err, 'still running');
    assert.equal(code, 0);
  });
});
