import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Prediction } from '../../src/core/prediction.js';
import type { Processor, ProcessorContext } from '../../src/workers/processor.js';
import {
  ABANDON_AFTER_ABORT_MS,
  ProcessorTimeoutError,
  runProcessor,
} from '../../src/workers/run-processor.js';
import { samplePrediction } from '../support/deliveries.js';

/**
 * runProcessor's clocks, on mock timers: a timeout aborts `ctx.signal`, a run that ignores the
 * abort is abandoned after ABANDON_AFTER_ABORT_MS, and nothing fires a tick early. No test here
 * waits for real time.
 */

const TIMEOUT_MS = 1000;
const prediction = samplePrediction('succeeded') as Prediction;

/** A context that keeps the run's signal where the test can see it. */
function contextFor(seen: { signal?: AbortSignal }) {
  return (signal: AbortSignal) => {
    seen.signal = signal;
    return { signal } as ProcessorContext;
  };
}

function options(signal = new AbortController().signal, forced = new Promise<never>(() => {})) {
  return { signal, forced, timeoutMs: TIMEOUT_MS };
}

const processor = (handle: Processor['handle']): Processor => ({ name: 'p', handle });

/** Resolves when `signal` aborts, rejecting with its reason, as `fetch` does. */
const untilAborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
  );

/** Lets promise callbacks run between ticks of the mock clock. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('runProcessor', () => {
  it('resolves ok when the processor resolves', async () => {
    const result = await runProcessor(
      processor(async () => {}),
      prediction,
      contextFor({}),
      options(),
    );
    assert.equal(result.ok, true);
  });

  it('fails with the processor’s error, not abandoned', async () => {
    const result = await runProcessor(
      processor(async () => {
        throw new Error('boom');
      }),
      prediction,
      contextFor({}),
      options(),
    );
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.error.message === 'boom' && !result.abandoned);
  });

  it('aborts ctx.signal at the timeout, not a tick before, and fails as timed out', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const seen: { signal?: AbortSignal } = {};
    const running = runProcessor(
      processor((_, ctx) => untilAborted(ctx.signal)),
      prediction,
      contextFor(seen),
      options(),
    );
    await flush();
    t.mock.timers.tick(TIMEOUT_MS - 1);
    assert.equal(seen.signal?.aborted, false, 'not yet');
    t.mock.timers.tick(1);
    assert.equal(seen.signal?.aborted, true);
    const result = await running;
    assert.ok(!result.ok);
    assert.ok(result.error instanceof ProcessorTimeoutError);
    assert.equal(result.error.message, `timed out after ${TIMEOUT_MS} ms (aborted)`);
    assert.equal(result.abandoned, false);
  });

  it('abandons a run that ignores its aborted signal, after the grace, and says so', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let settled = false;
    const running = runProcessor(
      processor(() => new Promise(() => {})),
      prediction,
      contextFor({}),
      options(),
    ).finally(() => {
      settled = true;
    });
    await flush();
    t.mock.timers.tick(TIMEOUT_MS);
    t.mock.timers.tick(ABANDON_AFTER_ABORT_MS - 1);
    await flush();
    assert.equal(settled, false, 'still waiting within the grace');
    t.mock.timers.tick(1);
    const result = await running;
    assert.ok(!result.ok);
    assert.equal(result.abandoned, true);
    assert.equal(
      result.error.message,
      `timed out after ${TIMEOUT_MS} ms and ignored its aborted signal`,
    );
  });

  it('passes the delivery’s abort on to ctx.signal, with its reason', async () => {
    const delivery = new AbortController();
    const seen: { signal?: AbortSignal } = {};
    const running = runProcessor(
      processor((_, ctx) => untilAborted(ctx.signal)),
      prediction,
      contextFor(seen),
      options(delivery.signal),
    );
    await flush();
    delivery.abort(new Error('worker stopping'));
    const result = await running;
    assert.equal((seen.signal?.reason as Error | undefined)?.message, 'worker stopping');
    assert.ok(!result.ok && !(result.error instanceof ProcessorTimeoutError));
  });

  it('stops waiting when the delivery is forced back, though the processor runs on', async () => {
    let force: (error: Error) => void = () => undefined;
    const forced = new Promise<never>((_, reject) => {
      force = reject;
    });
    const running = runProcessor(
      processor(() => new Promise(() => {})),
      prediction,
      contextFor({}),
      options(undefined, forced),
    );
    force(new Error('handed back'));
    const result = await running;
    assert.ok(!result.ok && result.error.message === 'handed back');
  });
});
