import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createLogger, type LineValue, logLine } from '../../src/core/logger.js';

/**
 * logLine writes by hand the line pino would write: the same bytes, for every kind of value the
 * ingest and the worker put on their per-delivery lines, at every level; and it leaves to pino
 * what it cannot write the same (another logger or a child, redacted fields).
 */

/** A logger made by createLogger whose lines are kept, with the time made constant. */
function captured(level = 'info') {
  const lines: string[] = [];
  const destination = { write: (line: string) => lines.push(line) };
  const logger = createLogger({ level, base: { service: 'test' }, destination });
  const read = () => lines.splice(0).map((line) => line.replace(/"time":"[^"]+"/, '"time":"T"'));
  return { logger, read };
}

const CASES: Array<[string, Record<string, LineValue>]> = [
  [
    'an accepted delivery',
    {
      webhookId: 'msg_2abcdEFG/+=.~-_',
      predictionId: 'ufawqhfynnddngldkgtslldrkq',
      predictionStatus: 'succeeded',
      outcome: 'accepted',
      httpStatus: 202,
      ms: 1.3,
    },
  ],
  [
    'a refusal with text to escape',
    {
      webhookId: undefined,
      reason: 'quote " backslash \\ newline \n tab \t control \u0001 unicode é ✓ 🚀',
      cause: '',
      unverified: true,
      suppressedSinceLast: 0,
      httpStatus: 401,
    },
  ],
  [
    'a processed delivery',
    { webhookId: 'msg_1', status: 'succeeded', ran: ['a', 'b "c"'], ms: { a: 3, 'b "c"': 0 } },
  ],
  ['numbers', { negative: -1, big: 1e21, small: 5e-7, nan: Number.NaN, inf: Infinity }],
  ['nothing', {}],
];

describe('logLine', () => {
  for (const [name, fields] of CASES) {
    it(`${name}: the bytes pino writes`, () => {
      const { logger, read } = captured('debug');
      for (const level of ['info', 'warn', 'error'] as const) {
        logger[level](fields, 'delivery');
        logLine(logger, level, fields, 'delivery');
        const [fromPino, byHand] = read();
        assert.ok(fromPino, 'pino wrote a line');
        assert.equal(byHand, fromPino);
      }
    });
  }

  it('writes nothing below the logger’s level', () => {
    const { logger, read } = captured('warn');
    logLine(logger, 'info', { webhookId: 'msg_1' }, 'delivery');
    assert.deepEqual(read(), []);
    logLine(logger, 'warn', { webhookId: 'msg_1' }, 'delivery');
    assert.equal(read().length, 1);
  });

  it('leaves a redacted field to pino, which censors it', () => {
    const { logger, read } = captured();
    logLine(logger, 'info', { webhookId: 'msg_1', token: 'hunter2' }, 'delivery');
    const [line] = read();
    assert.ok(line);
    assert.equal(JSON.parse(line).token, '[redacted]');
    assert.ok(!line.includes('hunter2'));
  });

  it('a logger it did not make gets pino’s own call', () => {
    const lines: string[] = [];
    const foreign = pino(
      { base: null, timestamp: false, formatters: { level: (label) => ({ level: label }) } },
      { write: (line: string) => lines.push(line) },
    );
    logLine(foreign, 'info', { webhookId: 'msg_1' }, 'delivery');
    assert.deepEqual(lines, ['{"level":"info","webhookId":"msg_1","msg":"delivery"}\n']);
  });
});
