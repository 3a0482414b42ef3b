import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { startManagedRedis } from '../../src/cli/managed-redis.js';
import { ioredis } from '../../src/core/commonjs-packages.js';
import { RedisServer, redisAnswers, type UnexpectedExit } from '../../src/core/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/** The one redis-server launcher: `inlet dev`'s private Redis, the tests' and the bench's. */

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'inlet-launcher-'));
  dirs.push(dir);
  return dir;
};
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function withClient<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new ioredis.Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

describe('RedisServer', () => {
  it('runs AOF on, noeviction, on 127.0.0.1, and keeps acknowledged data across a crash', async () => {
    const server = await RedisServer.start({ dir: tempDir(), appendfsync: 'always' });
    try {
      assert.notEqual(server.port, 6379);
      await withClient(server.url, async (client) => {
        assert.deepEqual(await client.config('GET', 'appendonly'), ['appendonly', 'yes']);
        assert.deepEqual(await client.config('GET', 'maxmemory-policy'), [
          'maxmemory-policy',
          'noeviction',
        ]);
        await client.set('kept', '1');
      });
      const port = server.port;
      await server.crash();
      assert.equal(await redisAnswers(server.url, 200), false);
      await server.start();
      assert.equal(server.port, port);
      assert.equal(await withClient(server.url, (client) => client.get('kept')), '1');
    } finally {
      await server.stop();
    }
  });

  it('reports an exit it was not asked for, and not one it was', async () => {
    const server = await RedisServer.start({ dir: tempDir() });
    const exits: UnexpectedExit[] = [];
    server.onUnexpectedExit((exit) => exits.push(exit));
    process.kill(server.pid, 'SIGKILL');
    await waitFor('the exit to be reported', () => exits.length === 1);
    assert.equal(exits[0]?.signal, 'SIGKILL');
    await server.start();
    await server.stop();
    await server.start();
    await server.crash();
    assert.equal(exits.length, 1, 'stop() and crash() are not unexpected');
  });

  it('says in one line why it could not start', async () => {
    await assert.rejects(
      RedisServer.start({ dir: tempDir(), binary: 'false' }),
      /^Error: redis-server exited at start \(no log\); see .*redis\.log$/,
    );
    await assert.rejects(
      RedisServer.start({ dir: join(tempDir(), 'missing') }),
      /^Error: redis-server could not start: spawn redis-server ENOENT$/,
    );
  });
});

describe('inlet dev’s private redis-server', () => {
  it('says loudly when it dies, and restarts it on its data and port', async () => {
    const cwd = tempDir();
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    const log = {
      error: (fields: Record<string, unknown>, msg: string) =>
        lines.push({ level: 'error', msg, fields }),
      info: (fields: Record<string, unknown>, msg: string) =>
        lines.push({ level: 'info', msg, fields }),
    };
    const managed = await startManagedRedis(cwd, 'test', log);
    try {
      await withClient(managed.url, async (client) => {
        await client.set('queued', 'delivery');
        await client.call('BGREWRITEAOF'); // everysec: make sure the write is on disk
        await waitFor('the AOF rewrite', async () =>
          (await client.info('persistence')).includes('aof_rewrite_in_progress:0'),
        );
      });
      const first = managed.pid;
      process.kill(first, 'SIGKILL');
      await waitFor('the restart', () =>
        lines.some((l) => l.msg === 'private redis-server restarted'),
      );
      const died = lines.find((l) => l.level === 'error');
      assert.match(died?.msg ?? '', /private redis-server died; restarting it/);
      assert.equal(died?.fields.signal, 'SIGKILL');
      assert.notEqual(managed.pid, first);
      assert.equal(await withClient(managed.url, (client) => client.get('queued')), 'delivery');
    } finally {
      await managed.stop();
    }
    assert.equal(await redisAnswers(managed.url, 200), false, 'stopped, and not restarted');
    assert.equal(lines.filter((l) => l.level === 'error').length, 1);
  });
});
