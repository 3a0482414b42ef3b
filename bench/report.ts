import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { CAUGHT_UP_MS, type EndToEndResult, MAX_WARMUP_FACTOR } from './e2e.js';
import type { IngestRound } from './ingest-rounds.js';
import {
  type InstructionRound,
  type StoreInstructionRound,
  WARMUP_STORES,
} from './redis-instructions.js';
import type { WorkerRound } from './worker-rounds.js';

export interface BenchResults {
  smoke: boolean;
  pinning: string;
  roundSeconds: number;
  connections: number;
  ingest: IngestRound[];
  workers: WorkerRound[] | string;
  /** Redis's instructions per delivery of each worker kind (callgrind), or why not counted. */
  instructions: InstructionRound[] | string;
  /** Redis's instructions per stored delivery of the naive handler and inlet, or why not. */
  storeInstructions: StoreInstructionRound[] | string;
  instructionJobs: number;
  workerSetup: string;
  endToEnd: EndToEndResult[] | string;
  ingestPeakRssBytes: number;
  baselinePeakRssBytes: number;
  /** The ingest's peak after the ingest rounds, before the end-to-end overload. */
  ingestRoundsPeakRssBytes: number;
  redisStalls: string;
  metrics: string;
  startedAt: Date;
  /** {@link revision} as it was when the run built the code. */
  revision: string;
  seconds: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};
const round = (value: number, digits = 0) =>
  Number.isFinite(value) ? value.toLocaleString('en-US', { maximumFractionDigits: digits }) : 'n/a';
/** Whether `value` meets its target; `not measured` when the run has no such figure (`--only`). */
const check = (value: number, ok: (value: number) => boolean) =>
  Number.isFinite(value) ? (ok(value) ? 'met' : '**missed**') : 'not measured';

/** The machine the numbers come from, for the README. */
export function machine(): string {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  return `${cpus().length} × ${cpu.trim()}, Linux, Node ${process.version}`;
}

/** The commit the run builds from, and whether src/ had uncommitted changes; read at start. */
export function revision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'src'], {
      encoding: 'utf8',
    }).trim();
    return dirty ? `${commit} + uncommitted changes in src/` : commit;
  } catch {
    return 'unknown';
  }
}

/** Renders the results as the markdown the README quotes. */
export function renderResults(results: BenchResults): string {
  const of = (name: string) => results.ingest.filter((r) => r.target === name);
  const summary = (name: string) => {
    const rounds = of(name);
    return {
      rps: median(rounds.map((r) => r.result.requestsPerSecond)),
      p50: median(rounds.map((r) => r.result.p50)),
      p99: median(rounds.map((r) => r.result.p99)),
      serverUs: median(rounds.map((r) => r.cpu.serverUs)),
      redisUs: median(rounds.map((r) => r.cpu.redisUs)),
    };
  };
  const base = summary('baseline');
  const naive = summary('naive');
  const inlet = summary('inlet');
  const ingestRssMb =
    results.ingest.length > 0 ? results.ingestRoundsPeakRssBytes / 1e6 : Number.NaN;
  const rows: string[][] = [
    ['measure', 'bare Koa', 'reference', 'inlet', 'inlet ÷ reference', 'target', ''],
    [
      'ingest throughput, requests/s (reference: naive handler)',
      round(base.rps),
      round(naive.rps),
      round(inlet.rps),
      round(inlet.rps / naive.rps, 2),
      '≥ 1.2',
      check(inlet.rps / naive.rps, (ratio) => ratio >= 1.2),
    ],
    [
      'ingest latency p50, ms',
      round(base.p50, 1),
      round(naive.p50, 1),
      round(inlet.p50, 1),
      round(inlet.p50 / naive.p50, 2),
      '',
      '',
    ],
    [
      'ingest latency p99, ms',
      round(base.p99, 1),
      round(naive.p99, 1),
      round(inlet.p99, 1),
      round(inlet.p99 / naive.p99, 2),
      '≤ 1',
      check(inlet.p99 / naive.p99, (ratio) => ratio <= 1),
    ],
    [
      'ingest server CPU per request, µs',
      round(base.serverUs),
      round(naive.serverUs),
      round(inlet.serverUs),
      round(inlet.serverUs / naive.serverUs, 2),
      '',
      '',
    ],
    [
      'Redis CPU per stored delivery, µs (reference: `Queue.add`)',
      '–',
      round(naive.redisUs),
      round(inlet.redisUs),
      round(inlet.redisUs / naive.redisUs, 2),
      '≤ 1.2',
      check(inlet.redisUs / naive.redisUs, (ratio) => ratio <= 1.2),
    ],
    ...storeInstructionRows(results.storeInstructions),
    [
      `ingest peak RSS at ${results.connections} connections, MB`,
      '',
      '',
      round(ingestRssMb, 1),
      '',
      '≤ 150 MB',
      check(ingestRssMb, (mb) => mb <= 150),
    ],
  ];
  const scaled = results.ingest.filter((r) => r.target.startsWith('inlet ×'));
  if (scaled.length > 0) {
    const name = scaled[0]?.target ?? '';
    const many = summary(name);
    rows.push([
      `ingest throughput with ${name.slice('inlet '.length)} processes (INLET_INGEST_PROCESSES), requests/s`,
      '',
      round(inlet.rps),
      round(many.rps),
      round(many.rps / inlet.rps, 2),
      '',
      '',
    ]);
  }
  if (typeof results.workers === 'string') {
    rows.push([
      'worker throughput, deliveries/s',
      '',
      '',
      results.workers,
      '',
      '≥ 0.6',
      'not measured',
    ]);
  } else {
    const raw = median(
      results.workers.filter((r) => r.kind === 'raw BullMQ').map((r) => r.deliveriesPerSecond),
    );
    const ours = median(
      results.workers.filter((r) => r.kind === 'inlet').map((r) => r.deliveriesPerSecond),
    );
    const workers = results.workers;
    const cpuOf = (kind: string, field: 'workerUs' | 'redisUs') =>
      median(workers.filter((r) => r.kind === kind).map((r) => r[field]));
    rows.push([
      'worker throughput, deliveries/s (reference: raw BullMQ)',
      '',
      round(raw),
      round(ours),
      round(ours / raw, 2),
      '≥ 0.6',
      check(ours / raw, (ratio) => ratio >= 0.6),
    ]);
    rows.push([
      'worker CPU per delivery, µs',
      '',
      round(cpuOf('raw BullMQ', 'workerUs')),
      round(cpuOf('inlet', 'workerUs')),
      round(cpuOf('inlet', 'workerUs') / cpuOf('raw BullMQ', 'workerUs'), 2),
      '',
      '',
    ]);
    rows.push([
      'Redis CPU per delivery (workers), µs',
      '',
      round(cpuOf('raw BullMQ', 'redisUs')),
      round(cpuOf('inlet', 'redisUs')),
      round(cpuOf('inlet', 'redisUs') / cpuOf('raw BullMQ', 'redisUs'), 2),
      '≤ 1.3',
      check(cpuOf('inlet', 'redisUs') / cpuOf('raw BullMQ', 'redisUs'), (ratio) => ratio <= 1.3),
    ]);
  }
  const counted = results.instructions;
  if (typeof counted === 'string') {
    rows.push([
      'Redis instructions per delivery (workers, callgrind), thousands',
      '',
      '',
      counted,
      '',
      '',
      'not measured',
    ]);
  } else {
    const of = (kind: string) =>
      median(counted.filter((r) => r.kind === kind).map((r) => r.instructions / 1000));
    const ratio = of('inlet') / of('raw BullMQ');
    rows.push([
      'Redis instructions per delivery (workers, callgrind), thousands',
      '',
      round(of('raw BullMQ')),
      round(of('inlet')),
      round(ratio, 2),
      '≤ 1.3',
      check(ratio, (value) => value <= 1.3),
    ]);
  }
  const e2e = results.endToEnd;
  if (typeof e2e === 'string') {
    rows.push(['end-to-end 202 → processor start', '', '', e2e, '', '≤ 25 ms p99', 'not measured']);
  } else {
    for (const run of e2e) {
      const target = run.rate === 1000;
      rows.push([
        `end-to-end 202 → processor start at ${run.rate}/s, p50 ms`,
        '',
        '',
        round(run.p50, 1),
        '',
        '',
        '',
      ]);
      if (target) {
        rows.push([
          `end-to-end at ${run.rate}/s: a cold worker caught up after, s`,
          '',
          '',
          Number.isNaN(run.caughtUpSeconds) ? 'not caught up' : round(run.caughtUpSeconds, 1),
          '',
          '',
          '',
        ]);
      }
      rows.push([
        `end-to-end 202 → processor start at ${run.rate}/s, p99 ms`,
        '',
        '',
        round(run.p99, 1),
        '',
        target ? '≤ 25 ms' : '',
        target ? check(run.p99, (ms) => ms <= 25) : '',
      ]);
    }
  }
  const rssMb = results.ingestPeakRssBytes / 1e6;
  const baselineRssMb = results.baselinePeakRssBytes / 1e6;
  rows.push([
    'peak RSS over the whole run (with end-to-end overload), MB',
    round(baselineRssMb, 1),
    '',
    round(rssMb, 1),
    '',
    '',
    '',
  ]);

  const lines = [
    `# inlet benchmark${results.smoke ? ' (smoke run: too short to quote)' : ''}`,
    '',
    table(rows),
    '',
    `Medians of ${of('inlet').length} alternating rounds of ${results.roundSeconds} s per server, ` +
      'bare Koa (no verification, no Redis), the naive handler (Koa + raw body + `verifyWebhook` + `Queue.add`, no de-duplication window, logs or metrics) and inlet; ' +
      `${results.connections} connections, autocannon; every request a unique, signed ~860-byte prediction.`,
    '',
    '## Conditions',
    '',
    `- machine: ${machine()}`,
    `- revision: ${results.revision}; run ${results.startedAt.toISOString()}, took ${Math.round(results.seconds)} s`,
    `- pinning: ${results.pinning}`,
    `- Redis: private redis-server ${redisVersion()}, AOF on (appendfsync everysec), emptied before each round, its AOF rewritten before end-to-end; ${results.redisStalls}`,
    `- ingest peak RSS after the ingest rounds (before end-to-end): ${round(results.ingestRoundsPeakRssBytes / 1e6, 1)} MB; the baseline runs under the tsx loader`,
    `- ingest: \`node dist/cli/main.js ingest\`, LOG_LEVEL=info to a file, metrics: ${results.metrics}`,
    `- workers: ${results.workerSetup}`,
    ...(typeof results.instructions === 'string'
      ? []
      : [
          `- Redis instructions: a second private redis-server under valgrind's callgrind (same settings), one round of each worker kind, ${results.instructionJobs} deliveries stored as the ingest stores them, counted from the queue's resumption until it is empty, less what Redis did idle for as long; a count of the same code moves by under 1 %, where CPU time moves by up to 2x on a shared machine, but a cache miss costs no instruction`,
        ]),
    ...(typeof results.storeInstructions === 'string'
      ? []
      : [
          `- Redis instructions per store: the naive handler and \`inlet ingest\` started on that Redis in turn, each sent ${WARMUP_STORES} deliveries not counted (the scripts' loading) then ${results.instructionJobs} unique signed deliveries over ${results.connections} connections (autocannon), counted from the first request to the last answer, less what Redis did idle (the server connected) for as long`,
        ]),
    '',
    '## Rounds',
    '',
    table([
      [
        'round',
        'server',
        'requests/s',
        'p50 ms',
        'p99 ms',
        'server µs CPU/req',
        'Redis µs CPU/req',
        "others' CPU",
        'non-2xx / errors',
      ],
      ...results.ingest.map((r) => [
        String(r.pair),
        r.target,
        round(r.result.requestsPerSecond),
        round(r.result.p50, 1),
        round(r.result.p99, 1),
        round(r.cpu.serverUs),
        r.target === 'baseline' ? '–' : round(r.cpu.redisUs),
        `${round(r.cpu.otherShare * 100)}%`,
        `${r.result.non2xx} / ${r.result.errors + r.result.timeouts}`,
      ]),
    ]),
    '',
    '"others\' CPU" is the share of the machine used during the round by processes outside the bench',
    '(other builds and tests): rounds with a high share are disturbed.',
  ];
  if (typeof results.workers !== 'string') {
    lines.push(
      '',
      table([
        [
          'round',
          'worker',
          'deliveries/s',
          'seconds',
          'worker µs CPU/delivery',
          'Redis µs CPU/delivery',
          'failed',
        ],
        ...results.workers.map((r, i) => [
          String(Math.floor(i / 2) + 1),
          r.kind,
          round(r.deliveriesPerSecond),
          round(r.seconds, 2),
          round(r.workerUs),
          round(r.redisUs),
          String(r.failed),
        ]),
      ]),
    );
  }
  if (typeof e2e !== 'string') {
    for (const run of e2e) {
      lines.push(
        '',
        `End-to-end at ${run.rate}/s: ${run.sent} deliveries sent evenly after a warm-up at the same rate (${warmupText(run)}); ${run.measured} measured, ` +
          `${run.missing} missing, ${run.unavailable} answered 503, ${run.failures} failed; max ${round(run.max, 1)} ms; ` +
          `send → 202 p99 ${round(run.ackP99, 1)} ms; AOF rewrites during the run ${run.aofRewrites}.`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The row of Redis's instructions per stored delivery, when they were counted. No target: they
 * are Redis's own instructions only, and the system calls that inlet's one write per turn of the
 * event loop saves Redis (the naive handler sends each store on its own) are not among them.
 */
function storeInstructionRows(counted: StoreInstructionRound[] | string): string[][] {
  const label = 'Redis instructions per stored delivery (callgrind, user space), thousands';
  if (typeof counted === 'string') {
    return counted.startsWith('not run') ? [] : [[label, '–', '', counted, '', '', '']];
  }
  const of = (kind: StoreInstructionRound['kind']) =>
    median(counted.filter((r) => r.kind === kind).map((r) => r.instructions / 1000));
  const ratio = of('inlet') / of('Queue.add');
  return [[label, '–', round(of('Queue.add')), round(of('inlet')), round(ratio, 2), '', '']];
}

/** How an end-to-end run's warm-up ended. */
function warmupText(run: EndToEndResult): string {
  const rule = `at least ${run.warmupSeconds} s, and until every delivery answered ${CAUGHT_UP_MS} ms before had started`;
  if (Number.isNaN(run.caughtUpSeconds)) {
    return `${rule}: not caught up after ${MAX_WARMUP_FACTOR * run.warmupSeconds} s, measured anyway`;
  }
  return `${rule}: ${round(run.caughtUpSeconds, 1)} s`;
}

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  if (!head) return '';
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...body.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

function redisVersion(): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return /v=([0-9.]+)/.exec(out)?.[1] ?? '';
  } catch {
    return '';
  }
}
