import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { redisAnswers } from '../../src/cli/managed-redis.js';
import { runCli, spawnCli, stopCli } from '../support/cli.js';
import { freePort } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('inlet dev', () => {
  const dirs: string[] = [];
  const workdir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'inlet-dev-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('starts a private redis-server, accepts a signed delivery, leaves nothing after Ctrl-C', async () => {
    const cwd = workdir();
    const port = await freePort();
    // Its own process group, so that the signal reaches it as Ctrl-C in a terminal would.
    const dev = spawnCli(['dev', '--private-redis'], {
      cwd,
      env: { PORT: String(port) },
      detached: true,
    });
    try {
      const started = await dev.waitForLog((l) =>
        String(l.msg).startsWith('started a private redis-server'),
      );
      const redisPid = started.redisPid as number;
      const redisUrl = `redis://127.0.0.1:${started.port}`;
      assert.ok(isAlive(redisPid));
      assert.ok(String(started.dir).startsWith(join(cwd, '.inlet')));
      await dev.waitForLog((l) => l.msg === 'worker ready');

      // `inlet send` from the same folder signs with the dev secret inlet dev made there.
      const sent = await runCli(
        ['send', '--url', `http://127.0.0.1:${port}/webhooks/replicate`, '--status', 'succeeded'],
        { cwd },
      );
      assert.equal(sent.code, 0, sent.stdout + sent.stderr);
      assert.match(sent.stdout, /1 accepted/);
      await dev.waitForLog((l) => l.msg === 'delivery processed' && l.status === 'succeeded');
      assert.ok(existsSync(join(cwd, '.inlet', 'redis', 'appendonlydir')), 'AOF is on');

      const exited = once(dev, 'exit');
      process.kill(-(dev.pid as number), 'SIGINT');
      const [code] = await exited;
      assert.equal(code, 0, dev.stderrText());
      await waitFor('redis-server gone', () => !isAlive(redisPid));
      assert.equal(await redisAnswers(redisUrl, 300), false);
      assert.equal(existsSync(join(cwd, '.inlet', 'redis', 'owner.json')), false);
    } finally {
      if (dev.exitCode === null) dev.kill('SIGKILL');
    }
  });

  test('a second run reuses the dev secret and the queued data', async () => {
    const cwd = workdir();
    const port = await freePort();
    const first = spawnCli(['dev', '--private-redis'], { cwd, env: { PORT: String(port) } });
    await first.waitForLog((l) => l.msg === 'worker ready');
    await stopCli(first, 'SIGTERM');
    const secret = readFileSync(join(cwd, '.inlet', 'dev-secret'), 'utf8');
    const second = spawnCli(['dev', '--private-redis'], { cwd, env: { PORT: String(port) } });
    const line = await second.waitForLog((l) =>
      String(l.msg).startsWith('no REPLICATE_WEBHOOK_SECRET'),
    );
    assert.match(String(line.msg), /using a dev secret/);
    assert.equal(readFileSync(join(cwd, '.inlet', 'dev-secret'), 'utf8'), secret);
    assert.equal(await stopCli(second, 'SIGTERM'), 0);
  });

  test('a redis-server left by a killed inlet dev is stopped before a new one uses the data', async () => {
    const cwd = workdir();
    const first = spawnCli(['dev', '--private-redis'], { cwd, env: { PORT: '0' } });
    const orphan = (await first.waitForLog((l) => l.redisPid !== undefined)).redisPid as number;
    await first.waitForLog((l) => l.msg === 'worker ready');
    first.kill('SIGKILL');
    await once(first, 'exit');
    assert.ok(isAlive(orphan), 'SIGKILL left the server behind');
    const second = spawnCli(['dev', '--private-redis'], { cwd, env: { PORT: '0' } });
    try {
      const fresh = (await second.waitForLog((l) => l.redisPid !== undefined)).redisPid as number;
      assert.notEqual(fresh, orphan);
      await waitFor('the leftover redis-server gone', () => !isAlive(orphan));
      await second.waitForLog((l) => l.leftoverPid === orphan);
      await second.waitForLog((l) => l.msg === 'worker ready');
      assert.equal(await stopCli(second, 'SIGTERM'), 0);
      await waitFor('the new redis-server gone', () => !isAlive(fresh));
    } finally {
      if (second.exitCode === null) second.kill('SIGKILL');
      if (isAlive(orphan)) process.kill(orphan, 'SIGKILL');
    }
  });

  test('no redis-server on PATH: one line saying what to install, exit 2', async () => {
    // A PATH with node and nothing else.
    const bin = workdir();
    symlinkSync(process.execPath, join(bin, 'node'));
    const result = await runCli(['dev', '--private-redis'], { cwd: workdir(), env: { PATH: bin } });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^inlet: .*redis-server is not on PATH: install redis-server \(macOS: brew install redis; Debian\/Ubuntu: sudo apt-get install redis-server.*\n$/,
    );
  });

  test('a taken port: one line, exit 2, and the private redis-server is stopped', async () => {
    const cwd = workdir();
    const holder = spawnCli(['dev', '--private-redis'], { cwd: workdir(), env: { PORT: '0' } });
    try {
      const listening = await holder.waitForLog((l) => l.msg === 'ingest listening');
      const taken = new URL(String(listening.url)).port;
      const result = await runCli(['dev', '--private-redis'], { cwd, env: { PORT: taken } });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`^inlet: port ${taken} is in use: stop what listens there or set PORT\\n$`),
      );
      const started = result.stdout
        .split('\n')
        .find((l) => l.includes('started a private redis-server'));
      const pid = JSON.parse(started ?? '{}').redisPid as number;
      await waitFor('redis-server gone', () => !isAlive(pid));
    } finally {
      await stopCli(holder, 'SIGTERM');
    }
  });

  test('--private-redis with REDIS_URL is refused', async () => {
    const result = await runCli(['dev', '--private-redis'], {
      env: { REDIS_URL: 'redis://127.0.0.1:1' },
    });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'inlet: --private-redis and REDIS_URL: choose one\n');
  });
});
