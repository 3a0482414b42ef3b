import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseEnv, jsonLines, ROOT, stopCli } from '../support/cli.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/wait-for.js';

/**
 * What a user does: pack the package, install the tarball into a fresh project outside the
 * checkout, write a TypeScript processor there, run `inlet dev --watch` and `inlet send --data`
 * from that project, and see the processor's effect; then edit the processor and see the new
 * version run. Slow (an npm install): `npm run test:pack`.
 */

const PROCESSOR = (version: string) => `import { appendFile } from 'node:fs/promises';
import { defineProcessor, type Prediction } from 'inlet-webhooks';

interface Output {
  text: string;
}

function line(prediction: Prediction<Record<string, unknown>, Output>): string {
  return JSON.stringify({ id: prediction.id, text: prediction.output?.text, version: '${version}' });
}

export default defineProcessor<Record<string, unknown>, Output>({
  name: 'save-text',
  statuses: ['succeeded'],
  async handle(prediction) {
    await appendFile('effects.jsonl', line(prediction) + '\\n');
  },
});
`;

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('a fresh project using the packed package', { timeout: 300_000 }, () => {
  const project = mkdtempSync(join(tmpdir(), 'inlet-user-'));
  let redis: TestRedis;
  let dev: ChildProcess | undefined;
  let devOut = '';
  let cli = '';

  before(async () => {
    redis = await TestRedis.start();
    const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', project], ROOT)) as [
      { filename: string },
    ];
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'my-app', private: true, type: 'module' }, null, 2)}\n`,
    );
    npm(
      ['install', `./${packed.filename}`, '--no-audit', '--no-fund', '--prefer-offline'],
      project,
    );
    cli = join(project, 'node_modules', 'inlet-webhooks', 'dist', 'cli', 'main.js');
    await mkdir(join(project, 'processors'));
    writeFileSync(join(project, 'processors', 'save-text.ts'), PROCESSOR('1'));
  });

  after(async () => {
    if (dev) await stopCli(dev);
    await redis?.destroy();
    rmSync(project, { recursive: true, force: true });
  });

  it('ships what the README points to, and no source maps', () => {
    const [listing] = JSON.parse(npm(['pack', '--dry-run', '--json'], ROOT)) as [
      { files: Array<{ path: string }> },
    ];
    const files = listing.files.map((f) => f.path);
    for (const wanted of ['LICENSE', 'README.md', 'examples/save-outputs.js', 'dist/testing.js']) {
      assert.ok(files.includes(wanted), `${wanted} is in the package`);
    }
    assert.equal(files.filter((f) => f.endsWith('.map')).length, 0);
    assert.equal(files.filter((f) => f.startsWith('src/') || f.startsWith('test/')).length, 0);
  });

  it('runs a TypeScript processor under inlet dev --watch, and reloads it when edited', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/webhooks/replicate`;
    const env = baseEnv({
      REDIS_URL: redis.url,
      PORT: String(port),
      INLET_PROCESSORS: './processors/save-text.ts',
    });
    dev = spawn(process.execPath, [cli, 'dev', '--watch'], {
      cwd: project,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      devOut += chunk;
    });
    dev.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      devOut += chunk;
    });
    /** waitFor, with inlet dev's output so far in the error if it times out. */
    const untilDev = <T>(what: string, check: () => T) =>
      waitFor(what, check, { intervalMs: 100 }).catch((error: Error) => {
        throw new Error(`${error.message}\n${devOut}`);
      });
    const workerReady = (count: number) =>
      untilDev(
        `worker ready ×${count}`,
        () => jsonLines(devOut).filter((l) => l.msg === 'worker ready').length >= count,
      );
    await workerReady(1);

    const send = (id: string, text: string) => {
      const prediction = { id, status: 'succeeded', output: { text }, input: {} };
      writeFileSync(join(project, `${id}.json`), JSON.stringify(prediction));
      return execFileSync(process.execPath, [cli, 'send', '--data', `${id}.json`, '--url', url], {
        cwd: project,
        env: baseEnv({ REDIS_URL: redis.url }),
        encoding: 'utf8',
      });
    };
    const effect = (id: string) =>
      untilDev(`the processor's effect for ${id}`, () => {
        const file = join(project, 'effects.jsonl');
        if (!existsSync(file)) return undefined;
        return readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { id: string; text: string; version: string })
          .find((l) => l.id === id);
      });

    assert.match(send('pred-one', 'hello'), /1 accepted/);
    assert.deepEqual(await effect('pred-one'), { id: 'pred-one', text: 'hello', version: '1' });

    writeFileSync(join(project, 'processors', 'save-text.ts'), PROCESSOR('2'));
    await workerReady(2);
    send('pred-two', 'again');
    assert.deepEqual(await effect('pred-two'), { id: 'pred-two', text: 'again', version: '2' });

    const inspect = execFileSync(process.execPath, [cli, 'inspect', 'pred-two'], {
      cwd: project,
      env: baseEnv({ REDIS_URL: redis.url }),
      encoding: 'utf8',
    });
    assert.match(inspect, /save-text: succeeded/);
  });
});
