import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../support/cli.js';
import { makeSecret } from '../support/deliveries.js';

describe('configuration errors at the command line', { concurrency: 4 }, () => {
  it('refuses to skip verification while a secret is set: one line, exit 2', async () => {
    const secret = makeSecret();
    const result = await runCli(['ingest'], {
      env: { INLET_INSECURE_SKIP_VERIFY: '1', REPLICATE_WEBHOOK_SECRET: secret, PORT: '0' },
    });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^inlet: INLET_INSECURE_SKIP_VERIFY=1 and REPLICATE_WEBHOOK_SECRET are both set[^\n]*\n$/,
    );
    assert.ok(!`${result.stdout}${result.stderr}`.includes(secret.slice(6)));
  });

  it('refuses INLET_INSECURE_SKIP_VERIFY=true instead of reading it as on', async () => {
    const result = await runCli(['ingest'], { env: { INLET_INSECURE_SKIP_VERIFY: 'true' } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^inlet: INLET_INSECURE_SKIP_VERIFY: expected 1 or 0/);
  });

  it('never prints the password of a bad REDIS_URL', async () => {
    for (const command of ['ingest', 'worker', 'replay']) {
      const result = await runCli([command, ...(command === 'replay' ? ['--all'] : [])], {
        env: { REDIS_URL: 'redis://inlet:hunter2secret@127.0.0.1:port' },
      });
      assert.equal(result.code, 2, command);
      assert.match(result.stderr, /^inlet: REDIS_URL: .*redis:\/\/…@127\.0\.0\.1:port/, command);
      assert.ok(!`${result.stdout}${result.stderr}`.includes('hunter2'), command);
    }
  });
});
