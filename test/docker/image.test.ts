import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { findOnPath } from '../../src/cli/managed-redis.js';
import { ROOT } from '../support/cli.js';
import { unlessInstalled } from '../support/requires-tool.js';

/**
 * What can be checked of the Dockerfile and docker-compose.yml without a Docker engine, in
 * `npm test`. The recipe itself runs for real in test/docker/compose.docker.ts
 * (`npm run test:docker`).
 */
const run = promisify(execFile);
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');

/** `INSTRUCTION [json array]` lines of the Dockerfile, in order. */
function instructions(name: string): string[][] {
  return [...dockerfile.matchAll(new RegExp(`^${name} (\\[.*\\])$`, 'gm'))].map(
    (match) => JSON.parse(match[1] as string) as string[],
  );
}

/** One service's block of docker-compose.yml (two-space indented under `services:`). */
function service(name: string): string {
  const match = compose.match(new RegExp(`^  ${name}:\\n((?:    .*\\n|\\s*\\n)+)`, 'm'));
  assert.ok(match, `docker-compose.yml has a ${name} service`);
  return match[1] as string;
}

/**
 * A list of strings under `key` in a service block, in flow (`key: ["a"]`) or block style
 * (`key:` then `- a` lines); double-quoted items are JSON strings.
 */
function yamlList(block: string, key: string): string[] {
  const flow = block.match(new RegExp(`^\\s+${key}: (\\[.*\\])$`, 'm'));
  if (flow) return JSON.parse(flow[1] as string) as string[];
  const list = block.match(new RegExp(`^(\\s+)${key}:\\n((?:\\1  - .*\\n)+)`, 'm'));
  assert.ok(list, `a ${key} list`);
  return (list[2] as string)
    .trimEnd()
    .split('\n')
    .map((line) => line.replace(/^\s+- /, ''))
    .map((item) => (item.startsWith('"') ? (JSON.parse(item) as string) : item));
}

const entrypoint = instructions('ENTRYPOINT').at(-1) ?? [];
const defaultCommand = instructions('CMD').at(-1) ?? [];

describe('the Dockerfile', () => {
  test('builds with the commands CI runs: npm ci, then npm run build; production deps apart', () => {
    const runs = instructions('RUN');
    assert.ok(runs.length >= 3, 'RUN instructions are in exec form');
    for (const command of runs) {
      const text = command.join(' ');
      assert.ok(
        /^npm ci( --[a-z=-]+)*$/.test(text) ||
          text === 'npm run build' ||
          text === 'rm -rf node_modules/typescript' ||
          text === 'install -d -o node -g node /data/outputs',
        `unexpected RUN ${text}`,
      );
    }
    assert.ok(runs.some((c) => c.join(' ') === 'npm run build'));
    assert.ok(
      runs.some((c) => c.includes('--omit=dev')),
      'a stage installs production dependencies only',
    );
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.match(pkg.scripts.test, /^npm run build && /, 'npm test builds the same way');
  });

  test('builds offline on a pinned Node LTS that package.json engines names', () => {
    assert.doesNotMatch(dockerfile, /^# syntax=/m, 'no BuildKit frontend to fetch');
    const version = dockerfile.match(/^ARG NODE_VERSION=(\d+)\.\d+\.\d+$/m)?.[1];
    assert.equal(version, '24', 'Node 24, pinned to an exact release');
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.equal(froms.length, 3);
    for (const from of froms) assert.match(from ?? '', /^node:\$\{NODE_VERSION\}-bookworm-slim$/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.ok(pkg.engines.node.split('||').some((range: string) => range.trim() === version));
  });

  test('runs as a non-root user and starts the built entry', () => {
    assert.match(dockerfile, /^USER node$/m);
    assert.deepEqual(entrypoint, ['node', 'dist/cli/main.js']);
    assert.deepEqual(defaultCommand, ['ingest']);
    assert.ok(existsSync(join(ROOT, 'dist/cli/main.js')), '`npm run build` produced the entry');
  });

  test('the built code imports only production dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const allowed = new Set([...Object.keys(pkg.dependencies), pkg.name]);
    const builtins = new Set(builtinModules);
    const offenders: string[] = [];
    for (const file of readdirSync(join(ROOT, 'dist'), { recursive: true }) as string[]) {
      if (!file.endsWith('.js')) continue;
      const code = readFileSync(join(ROOT, 'dist', file), 'utf8');
      for (const [, spec] of code.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        // Skips relative paths, builtins and template text such as `from "${spec}"` in messages.
        if (!spec || /^[.$]|^node:|\s/.test(spec) || builtins.has(spec)) continue;
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : (spec.split('/')[0] as string);
        if (!allowed.has(name)) offenders.push(`${file}: ${spec}`);
      }
    }
    assert.deepEqual(offenders, [], 'dev dependencies are not in the image');
  });
});

describe('docker-compose.yml', () => {
  test('Redis keeps an AOF, never evicts, is health-checked and on a named volume', () => {
    const redis = service('redis');
    assert.match(redis, /--appendonly\n\s+- "yes"/);
    assert.match(redis, /--appendfsync\n\s+- \$\{REDIS_APPENDFSYNC:-everysec\}/);
    assert.match(redis, /--maxmemory-policy\n\s+- noeviction/);
    assert.match(redis, /healthcheck:/);
    assert.match(redis, /- redis-data:\/data/);
    assert.match(compose, /^volumes:\n {2}redis-data:/m);
  });

  test('workers scale: no container_name, no host port, a stop grace above their drain', () => {
    const worker = service('worker');
    assert.doesNotMatch(worker, /container_name|ports:/);
    const command = yamlList(worker, 'command');
    assert.deepEqual(command.slice(0, 2), ['worker', '--heartbeat-file']);
    assert.deepEqual(
      yamlList(worker, 'test'),
      ['CMD', 'node', 'dist/cli/main.js', 'healthcheck', command[2]],
      "the worker's healthcheck reads the heartbeat file it keeps",
    );
    const grace = Number(worker.match(/stop_grace_period: (\d+)s/)?.[1]);
    const drainMs = Number(
      worker.match(/INLET_SHUTDOWN_GRACE_MS: \$\{INLET_SHUTDOWN_GRACE_MS:-(\d+)\}/)?.[1],
    );
    assert.ok(
      grace * 1000 > drainMs + 2000,
      `stop_grace_period ${grace}s > drain ${drainMs} ms + 2 s`,
    );
    assert.match(compose, /depends_on:\n\s+redis:\n\s+condition: service_healthy/);
  });

  test('docker-compose config accepts it, alone and with the Docker secrets overlay', {
    skip: unlessInstalled(Boolean(findOnPath('docker-compose')), 'docker-compose'),
  }, async () => {
    const env = { ...process.env, COMPOSE_PROJECT_NAME: 'inlet-test' };
    await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '--quiet'], {
      cwd: ROOT,
      env,
    });
    await run(
      'docker-compose',
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.secrets.yml', 'config', '--quiet'],
      { cwd: ROOT, env },
    );
    const { stdout } = await run(
      'docker-compose',
      ['-f', 'docker-compose.yml', 'config', '--services'],
      { cwd: ROOT, env },
    );
    const services = stdout.trim().split('\n');
    for (const name of ['redis', 'ingest', 'worker']) assert.ok(services.includes(name), name);
  });
});
