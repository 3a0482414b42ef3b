import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CommanderError } from 'commander';
import { createProgram } from '../../src/cli/program.js';
import { sendCommand } from '../../src/cli/send.js';
import { parseCommandLine, runCli } from '../support/cli.js';

const COMMANDS = [
  'ingest',
  'worker',
  'dev',
  'send',
  'replay',
  'secret',
  'inspect',
  'init',
  'reconcile',
  'healthcheck',
];

describe('the inlet CLI', { concurrency: 4 }, () => {
  test('lists every command of the README command table', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    for (const command of COMMANDS)
      assert.match(result.stdout, new RegExp(`^  ${command}\\b`, 'm'));
  });

  // One command of each kind through a real process: the exit code, stdout and stderr as a
  // shell sees them. The rest in this process, through the same program (createProgram), without
  // a process each (about 0.35 s of CPU apiece).
  test('inlet worker --help and inlet ingest --no-such-flag, as processes', async () => {
    const help = await runCli(['worker', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: inlet worker /);
    assert.equal(help.stderr, '');
    const refused = await runCli(['ingest', '--no-such-flag']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^error: unknown option '--no-such-flag'\n/);
    assert.doesNotMatch(refused.stderr, /\n\s+at /);
  });

  for (const command of COMMANDS) {
    test(`inlet ${command} --help answers with usage, exit 0`, async () => {
      const result = await parseInlet([command, '--help']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: inlet ${command} `));
      assert.equal(result.stderr, '');
    });

    test(`inlet ${command} --no-such-flag: one line, exit 1, no stack`, async () => {
      const result = await parseInlet([command, '--no-such-flag']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^error: unknown option '--no-such-flag'\n/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    });
  }

  // Two refusals end to end: the process's exit code and its one line.
  for (const [args, message] of [
    [
      ['send', '--count', '0'],
      /argument '0' is invalid\. expected a whole number from 1 to 100000/,
    ],
    [['send', '--status', 'done'], /"done" is not a status/],
  ] as Array<[string[], RegExp]>) {
    test(`inlet ${args.join(' ')}: one clear line, exit 1`, async () => {
      const result = await runCli(args);
      assert.equal(result.code, 1);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    });
  }

  // The rest of the table through the same command object in this process: the same parsing
  // and message, without a process each (about 0.3 s of CPU apiece).
  const badValues: Array<[string[], RegExp]> = [
    [
      ['--count', '0'],
      /^error: option '--count <n>' argument '0' is invalid\. expected a whole number from 1 to 100000\n/,
    ],
    [['--count', 'many'], /argument 'many' is invalid/],
    [
      ['--status', 'done'],
      /"done" is not a status: use starting, processing, succeeded, failed, canceled, aborted or all/,
    ],
    [['--status', 'all,succeeded'], /"all" stands alone/],
    [['--url', 'ftp://x'], /expected an http:\/\/ or https:\/\/ URL/],
    [['--url', 'not a url'], /expected a URL like/],
    [['--prediction', 'a,,b'], /"" is not a prediction id/],
    [['--duplicate', '99'], /expected a whole number from 1 to 10/],
    [['--concurrency', '-1'], /unknown option '-1'|argument '-1' is invalid/],
  ];
  for (const [args, message] of badValues) {
    test(`send ${args.join(' ')} is refused in one line, exit 1`, async () => {
      const result = await parseCommandLine(sendCommand(), args);
      assert.equal(result.code, 1);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    });
  }

  test('bad configuration: one line naming the variable, exit 2', async () => {
    const replay = await runCli(['replay', '--all'], { env: { REDIS_URL: 'http://nope' } });
    assert.equal(replay.code, 2);
    assert.match(
      replay.stderr,
      /^inlet: REDIS_URL: expected redis:\/\/host:port or rediss:\/\/… \(got "http:\/\/nope"\)\n$/,
    );
  });

  test('--prediction with --count is refused in one line', async () => {
    const result = await runCli(['send', '--prediction', 'p', '--count', '2', '--unsigned']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'inlet: --prediction names the predictions: leave out --count\n');
  });
});

/**
 * Parses `inlet <args>` in this process with the program `inlet` itself builds, commander's
 * output captured and its exits thrown: what a process would print, and its exit code.
 */
async function parseInlet(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const program = await createProgram(args);
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({
      writeOut: (text) => (stdout += text),
      writeErr: (text) => (stderr += text),
    });
  }
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode, stdout, stderr };
    throw error;
  }
}
