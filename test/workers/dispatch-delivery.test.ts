import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from 'bullmq';
import { bullmq } from '../../src/core/commonjs-packages.js';
import type { DeliveryJob } from '../../src/core/job.js';
import type { PredictionStatus } from '../../src/core/prediction.js';
import type { Ledger } from '../../src/workers/counted-ledger.js';
import { DeliveryDispatcher } from '../../src/workers/dispatch-delivery.js';
import type { BeginOutcome, DeliveryRef } from '../../src/workers/prediction-ledger.js';
import type { Processor } from '../../src/workers/processor.js';
import { samplePrediction, webhookId } from '../support/deliveries.js';
import { CapturedLogs } from '../support/ingest.js';

/**
 * The dispatcher's decisions against a ledger double: for each answer of `begin` and each way a
 * run ends, which ledger steps it takes, with which lock token, and what it logs. The ledger's
 * scripts are tested against Redis in test/core/scripts/; the two together across processes in
 * once-per-prediction.test.ts.
 */

/** Records every ledger call; `begin` and `markDone` answer what the test says. */
class LedgerDouble implements Ledger {
  readonly calls: Array<{ step: string; token?: string | undefined; detail?: unknown }> = [];
  beginToken = '';

  constructor(
    private readonly answer: BeginOutcome,
    private readonly firstRun = true,
    /** What `complete` answers, when not the usual. */
    private readonly completed?: Promise<boolean>,
  ) {}

  async begin(_delivery: DeliveryRef, token: string): Promise<BeginOutcome> {
    this.beginToken = token;
    this.calls.push({ step: 'begin', token });
    return this.answer;
  }
  async markDone(_d: DeliveryRef, processor: string, _s: number, token: string) {
    this.calls.push({ step: 'markDone', token, detail: processor });
    return this.firstRun;
  }
  hold() {
    this.calls.push({ step: 'hold' });
    return { stop: () => this.calls.push({ step: 'unhold' }) };
  }
  async complete(
    _d: DeliveryRef,
    token: string | undefined,
    event: string,
    done?: { processor: string },
  ) {
    this.calls.push({
      step: 'complete',
      token,
      detail: done ? `${event} ${done.processor}` : event,
    });
    return this.completed ?? (done ? this.firstRun : true);
  }
  async fail(_d: DeliveryRef, token: string | undefined, failure: { final: boolean }) {
    this.calls.push({ step: 'fail', token, detail: failure.final });
  }
  async release(_d: DeliveryRef, token: string) {
    this.calls.push({ step: 'release', token });
  }
  recordFailedRuns() {
    this.calls.push({ step: 'recordFailedRuns' });
  }
  steps(): string[] {
    return this.calls.map((c) => c.step);
  }
}

/** A job double with what the dispatcher reads and the two moves it makes. */
function jobFor(status: PredictionStatus, attemptsMade = 0) {
  const id = webhookId();
  const moved: number[] = [];
  const job = {
    id,
    data: {
      webhookId: id,
      timestamp: 0,
      receivedAt: 0,
      query: {},
      prediction: samplePrediction(status),
    },
    attemptsMade,
    opts: { attempts: 3 },
    moveToDelayed: async (at: number) => {
      moved.push(at);
    },
    log: async () => 0,
  };
  return { job: job as unknown as Job<DeliveryJob>, moved };
}

const ok = (name: string): Processor => ({ name, handle: async () => {} });
const failing = (name: string, error: Error): Processor => ({
  name,
  handle: async () => {
    throw error;
  },
});

function dispatcher(ledger: Ledger, processors: Processor[]) {
  const logs = new CapturedLogs();
  return {
    logs,
    dispatcher: new DeliveryDispatcher({
      ledger,
      processors,
      logger: logs.logger,
      timeoutMs: 60_000,
    }),
  };
}

describe('DeliveryDispatcher', () => {
  it('skip: completes without a lock, counted as skipped after the terminal state', async () => {
    const ledger = new LedgerDouble({ kind: 'skip', recordedStatus: 'succeeded' });
    const { dispatcher: d } = dispatcher(ledger, [ok('a')]);
    const result = await d.dispatch(jobFor('processing').job, 'tok');
    assert.deepEqual(result, { outcome: 'skipped_after_terminal', recordedStatus: 'succeeded' });
    assert.deepEqual(ledger.calls.at(-1), {
      step: 'complete',
      token: undefined,
      detail: 'skipped_after_terminal',
    });
  });

  it('done: completes without a lock and runs nothing', async () => {
    const ledger = new LedgerDouble({ kind: 'done', recordedStatus: 'succeeded' });
    const { dispatcher: d } = dispatcher(ledger, [failing('a', new Error('must not run'))]);
    assert.deepEqual(await d.dispatch(jobFor('succeeded').job, 'tok'), { outcome: 'already_done' });
    assert.deepEqual(ledger.steps(), ['begin', 'complete']);
  });

  it('busy: waits in the delayed set, longer with each wait, without failing the try', async () => {
    const delays: number[] = [];
    for (const waits of [1, 8]) {
      const ledger = new LedgerDouble({ kind: 'busy', waits });
      const { job, moved } = jobFor('succeeded');
      const before = Date.now();
      await assert.rejects(
        dispatcher(ledger, [ok('a')]).dispatcher.dispatch(job, 'tok'),
        bullmq.DelayedError,
      );
      assert.deepEqual(ledger.steps(), ['begin']);
      delays.push((moved[0] ?? 0) - before);
    }
    assert.ok((delays[0] ?? 0) <= (delays[1] ?? 0) + 50, `delays ${delays}`);
  });

  it('run: each success recorded under the try’s lock token, the last with the completion', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a', 'b'] });
    const { dispatcher: d, logs } = dispatcher(ledger, [ok('a'), ok('b')]);
    const result = await d.dispatch(jobFor('succeeded').job, 'tok');
    assert.deepEqual(result, { outcome: 'processed', ran: ['a', 'b'] });
    assert.deepEqual(ledger.steps(), ['begin', 'hold', 'markDone', 'unhold', 'complete']);
    assert.equal(ledger.calls[2]?.detail, 'a');
    assert.equal(ledger.calls.at(-1)?.detail, 'processed b');
    for (const call of ledger.calls.filter((c) => c.step !== 'hold' && c.step !== 'unhold'))
      assert.equal(call.token, ledger.beginToken, `${call.step} uses the try's token`);
    assert.ok(ledger.beginToken.startsWith('tok:'));
    assert.equal(logs.lines.filter((l) => Number(l.level) >= 50).length, 0, 'no error line');
  });

  it('two tries never share a lock token', async () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] });
      await dispatcher(ledger, [ok('a')]).dispatcher.dispatch(jobFor('succeeded').job, 'tok');
      tokens.add(ledger.beginToken);
    }
    assert.equal(tokens.size, 3);
  });

  it('logs "ran a second time" only when the ledger says another try recorded it', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] }, false);
    const { dispatcher: d, logs } = dispatcher(ledger, [ok('a')]);
    await d.dispatch(jobFor('succeeded').job, 'tok');
    await new Promise((resolve) => setImmediate(resolve)); // the ledger's answer, handled
    const alarm = logs.lines.filter((l) => String(l.msg).includes('ran a second time'));
    assert.equal(alarm.length, 1);
    assert.equal(alarm[0]?.level, 50);
  });

  it('hands BullMQ the result without waiting for the ledger to confirm the end', async () => {
    // PredictionLedger.complete sends the end on BullMQ's connection: Redis runs it before the
    // job's completion, which must follow in the same write, so the dispatcher cannot wait.
    const never = new Promise<boolean>(() => undefined);
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] }, true, never);
    const { dispatcher: d } = dispatcher(ledger, [ok('a')]);
    assert.deepEqual(await d.dispatch(jobFor('succeeded').job, 'tok'), {
      outcome: 'processed',
      ran: ['a'],
    });
    assert.deepEqual(ledger.steps(), ['begin', 'hold', 'unhold', 'complete']);
  });

  it('an end the ledger could not record is logged at error, naming the processor', async () => {
    const refused = Promise.reject(new Error('NOPERM'));
    refused.catch(() => undefined);
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] }, true, refused);
    const { dispatcher: d, logs } = dispatcher(ledger, [ok('a')]);
    await d.dispatch(jobFor('succeeded').job, 'tok');
    await new Promise((resolve) => setImmediate(resolve));
    const errors = logs.lines.filter((l) => Number(l.level) >= 50);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.processor, 'a');
    assert.equal(errors[0]?.err, 'NOPERM');
    assert.match(String(errors[0]?.msg), /may run that processor again/);
  });

  it('a failure: the other processors still run, the lock is released with the failure', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a', 'b'] });
    const { dispatcher: d } = dispatcher(ledger, [failing('a', new Error('down')), ok('b')]);
    await assert.rejects(d.dispatch(jobFor('succeeded').job, 'tok'), /a: down/);
    assert.deepEqual(ledger.steps(), ['begin', 'hold', 'markDone', 'unhold', 'fail']);
    const fail = ledger.calls.at(-1);
    assert.equal(fail?.token, ledger.beginToken);
    assert.equal(fail?.detail, false, 'not final: attempts remain');
  });

  it('the last attempt, or an UnrecoverableError, dead-letters', async () => {
    for (const [attemptsMade, error] of [
      [2, new Error('down')],
      [0, new bullmq.UnrecoverableError('never')],
    ] as const) {
      const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] });
      const { dispatcher: d } = dispatcher(ledger, [failing('a', error)]);
      await assert.rejects(d.dispatch(jobFor('succeeded', attemptsMade).job, 'tok'));
      assert.equal(ledger.calls.at(-1)?.detail, true, `final after ${attemptsMade} tries`);
    }
  });

  it('stopping: a running delivery is aborted, its lock released, the job handed back', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] });
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const slow: Processor = {
      name: 'a',
      handle: (_p, ctx) =>
        new Promise((_, reject) => {
          started();
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        }),
    };
    const { dispatcher: d } = dispatcher(ledger, [slow]);
    const { job, moved } = jobFor('succeeded');
    const dispatched = d.dispatch(job, 'tok');
    await running;
    d.abortAll();
    await assert.rejects(dispatched, bullmq.DelayedError);
    assert.deepEqual(ledger.steps(), ['begin', 'hold', 'unhold', 'release']);
    assert.equal(ledger.calls.at(-1)?.token, ledger.beginToken);
    assert.equal(moved.length, 1);
    // Dispatched after the stop: handed back at once, before the ledger is asked anything.
    const later = new LedgerDouble({ kind: 'run', pending: ['a'] });
    const after = new DeliveryDispatcher({
      ledger: later,
      processors: [ok('a')],
      logger: new CapturedLogs().logger,
      timeoutMs: 1000,
    });
    after.abortAll();
    await assert.rejects(after.dispatch(jobFor('succeeded').job, 'tok'), bullmq.DelayedError);
    assert.deepEqual(later.steps(), []);
  });

  it('stopping: a last success that ignored the abort is recorded before the lock goes', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: ['a'] });
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const finishes: Processor = {
      name: 'a',
      handle: (_p, ctx) =>
        new Promise<void>((resolve) => {
          started();
          ctx.signal.addEventListener('abort', () => resolve());
        }),
    };
    const { dispatcher: d } = dispatcher(ledger, [finishes]);
    const dispatched = d.dispatch(jobFor('succeeded').job, 'tok');
    await running;
    d.abortAll();
    await assert.rejects(dispatched, bullmq.DelayedError);
    assert.deepEqual(ledger.steps(), ['begin', 'hold', 'markDone', 'unhold', 'release']);
  });

  it('a job that is not a delivery fails for good', async () => {
    const ledger = new LedgerDouble({ kind: 'run', pending: [] });
    const { job } = jobFor('succeeded');
    (job.data as Partial<DeliveryJob>).webhookId = '';
    await assert.rejects(
      dispatcher(ledger, []).dispatcher.dispatch(job, 'tok'),
      bullmq.UnrecoverableError,
    );
    assert.deepEqual(ledger.steps(), []);
  });
});
