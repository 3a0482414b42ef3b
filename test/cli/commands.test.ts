import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runCli } from '../support/cli.js';

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

  for (const command of COMMANDS) {
    test(`inlet ${command} --help answers with usage, exit 0`, async () => {
      const result = await runCli([command, '--help']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: inlet ${command} `));
      assert.equal(result.stderr, '');
    });

    test(`inlet ${command} --no-such-flag: one line, non-zero exit, no stack`, async () => {
      const result = await runCli([command, '--no-such-flag']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^error: unknown option '--no-such-flag'\n/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    });
  }

  const badValues: Array<[string[], RegExp]> = [
    [
      ['send', '--count', '0'],
      /option '--count <n>' argument '0' is invalid\. expected a whole number from 1 to 100000/,
    ],
    [['send', '--count', 'many'], /argument 'many' is invalid/],
    [
      ['send', '--status', 'done'],
      /"done" is not a status: use starting, processing, succeeded, failed, canceled, aborted or all/,
    ],
    [['send', '--status', 'all,succeeded'], /"all" stands alone/],
    [['send', '--url', 'ftp://x'], /expected an http:\/\/ or https:\/\/ URL/],
    [['send', '--url', 'not a url'], /expected a URL like/],
    [['send', '--prediction', 'a,,b'], /"" is not a prediction id/],
    [['send', '--duplicate', '99'], /expected a whole number from 1 to 10/],
    [['send', '--concurrency', '-1'], /unknown option '-1'|argument '-1' is invalid/],
  ];
  for (const [args, message] of badValues) {
    test(`inlet ${args.join(' ')}: one clear line, exit 1`, async () => {
      const result = await runCli(args);
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
