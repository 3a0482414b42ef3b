import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { type CliProcess, spawnCli } from '../support/cli.js';
import { makeSecret } from '../support/deliveries.js';
import { freePort, TestRedis } from '../support/redis-server.js';

/** The grace period the processes run with; the README promises exit within it + 2 s. */
const GRACE_MS = 1000;
/** Room for the process to notice the signal and exit on a busy machine. */
const SLACK_MS = 1500;

/** Sends SIGTERM and resolves with how long the process took to exit, and its code. */
async function terminate(child: CliProcess): Promise<{ ms: number; code: number | null }> {
  const exited = once(child, 'exit');
  const started = performance.now();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  return { ms: performance.now() - started, code };
}

async function redisPid(redis: TestRedis): Promise<number> {
  const client = redis.client();
  const info = await client.info('server');
  client.disconnect();
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

for (const outage of ['killed', 'stopped (SIGSTOP)'] as const) {
  describe(`SIGTERM while Redis is ${outage}`, () => {
    let redis: TestRedis;
    let pid: number;
    const children: CliProcess[] = [];

    before(async () => {
      redis = await TestRedis.start();
      pid = await redisPid(redis);
    });

    after(async () => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      if (outage !== 'killed') process.kill(pid, 'SIGCONT');
      await redis.destroy();
    });

    const env = () => ({
      REDIS_URL: redis.url,
      INLET_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      REPLICATE_WEBHOOK_SECRET: makeSecret(),
    });

    async function cutRedis(): Promise<void> {
      if (outage === 'killed') await redis.stop();
      else process.kill(pid, 'SIGSTOP');
    }

    it('a worker exits within the grace period + 2 s', async () => {
      const worker = spawnCli(['worker'], { env: env() });
      children.push(worker);
      await worker.waitForLog((line) => line.msg === 'worker ready');
      await cutRedis();
      const { ms, code } = await terminate(worker);
      assert.ok(ms < GRACE_MS + 2000 + SLACK_MS, `exited after ${Math.round(ms)} ms`);
      assert.equal(code, 0, worker.stderrText());
    });

    it('inlet dev exits within the grace period + 2 s', async () => {
      if (outage === 'killed') await redis.start();
      else process.kill(pid, 'SIGCONT');
      const dev = spawnCli(['dev'], { env: { ...env(), PORT: String(await freePort()) } });
      children.push(dev);
      await dev.waitForLog((line) => String(line.msg).startsWith('ready: deliver to'));
      await cutRedis();
      const { ms, code } = await terminate(dev);
      assert.ok(ms < GRACE_MS + 2000 + SLACK_MS, `exited after ${Math.round(ms)} ms`);
      assert.equal(code, 0, dev.stderrText());
    });
  });
}
