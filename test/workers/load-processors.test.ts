import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/core/config.js';
import { loadProcessors } from '../../src/workers/load-processors.js';
import { ROOT, testFile } from '../support/paths.js';

const fixtures = testFile('workers', 'fixtures');
const root = ROOT;

async function failure(specs: string[]): Promise<string> {
  try {
    await loadProcessors(specs, fixtures);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${(error as Error).name}`);
    assert.ok(!error.message.includes('\n'), 'one line');
    return error.message;
  }
  throw new Error('loaded');
}

describe('loadProcessors', () => {
  it('loads files relative to cwd, absolute paths and TypeScript processors', async () => {
    const processors = await loadProcessors(
      ['./plain.mjs', join(fixtures, 'record-a.ts'), 'record-b.ts'],
      fixtures,
    );
    assert.deepEqual(
      processors.map((p) => p.name),
      ['plain', 'record-a', 'record-b'],
    );
    assert.deepEqual(processors[1]?.statuses, ['succeeded', 'failed', 'canceled', 'aborted']);
  });

  it('loads packages by name', async () => {
    // Any installed package with a default-exported object stands in for a processor package;
    // it fails the shape check, which proves it was found and imported.
    assert.match(await failure(['pino']), /"pino" (has no `name`|has no default export)/);
  });

  it('says in one line what is wrong with each bad spec', async () => {
    assert.match(
      await failure(['./nope.js']),
      /cannot find "\.\/nope\.js" \(looked for .*nope\.js\)/,
    );
    assert.match(await failure(['inlet-no-such-package']), /cannot find "inlet-no-such-package"/);
    assert.match(await failure(['./no-name.mjs']), /"\.\/no-name\.mjs" has no `name`/);
    assert.match(await failure(['./no-handle.mjs']), /\(no-handle\) has no `handle` function/);
    assert.match(await failure(['./bad-status.mjs']), /unknown status "done"/);
    assert.match(await failure(['./bad-timeout.mjs']), /`timeoutMs` must be a positive whole/);
    assert.match(
      await failure(['./throws-on-load.mjs']),
      /failed to load at .*throws-on-load\.mjs:1:7: DATABASE_URL is not set/,
    );
    assert.match(
      await failure(['./record-a.ts', './duplicate-a.mjs']),
      /"\.\/duplicate-a\.mjs" and "\.\/record-a\.ts" are both named "record-a"/,
    );
  });

  it('says where a syntax error is: file, line and column', async () => {
    // Written at run time: the linter cannot parse them in the tree.
    const dir = mkdtempSync(join(tmpdir(), 'inlet-syntax-'));
    try {
      writeFileSync(join(dir, 'bad.mjs'), 'export default {\n  name: "bad" handle() {},\n};\n');
      writeFileSync(
        join(dir, 'bad.ts'),
        'const n: number = 1;\nexport default { name: "x" + , n };\n',
      );
      const load = async (spec: string) => {
        try {
          await loadProcessors([spec], dir);
        } catch (error) {
          return (error as Error).message;
        }
        throw new Error('loaded');
      };
      assert.match(
        await load('./bad.mjs'),
        /"\.\/bad\.mjs" failed to load at .*bad\.mjs:2:15: Unexpected identifier 'handle'/,
      );
      assert.match(await load('./bad.ts'), /"\.\/bad\.ts" failed to load at .*bad\.ts:2:30: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads a TypeScript processor in a plain node, without tsx preloaded', () => {
    // A child with no loader preloaded (the test may run under tsx) shows what `inlet worker` does.
    const script = `
      const { loadProcessors } = await import(${JSON.stringify(join(root, 'dist/workers/load-processors.js'))});
      const [typed] = await loadProcessors(['./typed.ts'], ${JSON.stringify(fixtures)});
      process.stdout.write(typed.name);`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, 'typed');
  });

  it('makes `inlet worker` exit non-zero with that line and no stack trace', () => {
    const result = spawnSync(process.execPath, ['dist/cli/main.js', 'worker'], {
      cwd: root,
      env: {
        ...process.env,
        REDIS_URL: 'redis://127.0.0.1:1',
        INLET_PROCESSORS: relative(root, join(fixtures, 'no-handle.mjs')),
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(result.status, 2);
    assert.equal(
      result.stderr,
      'inlet: INLET_PROCESSORS: "test/workers/fixtures/no-handle.mjs" (no-handle) has no `handle` function\n',
    );
  });
});
