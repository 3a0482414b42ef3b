import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
  const script = `import { createLogger, flushLogger } from ${JSON.stringify(LOGGER)};
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
});
