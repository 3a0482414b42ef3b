import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineProcessor, UnrecoverableError } from '../src/index.js';
import { createTestContext, runProcessorOnce, samplePredictions } from '../src/testing.js';

const wantsSucceeded = defineProcessor<{ prompt: string }, string[]>({
  name: 'save',
  statuses: ['succeeded'],
  async handle(prediction, ctx) {
    ctx.log.info({ urls: prediction.output, customId: ctx.query.customId }, 'saved');
  },
});

describe('inlet-webhooks/testing', () => {
  it('gives one realistic prediction per status, sharing an id', () => {
    const samples = samplePredictions();
    assert.deepEqual(Object.keys(samples).sort(), [
      'aborted',
      'canceled',
      'failed',
      'processing',
      'starting',
      'succeeded',
    ]);
    const ids = new Set(Object.values(samples).map((p) => p.id));
    assert.equal(ids.size, 1);
    assert.match(
      String((samples.succeeded.output as string[])[0]),
      /^https:\/\/replicate\.delivery\//,
    );
    assert.equal(samples.failed.error, 'CUDA error: out of memory');
    assert.equal(samples.starting.output, null);
    assert.equal(samples.succeeded.completed_at !== null, true);
    const own = samplePredictions({ output: { text: 'hi' } });
    assert.deepEqual(own.succeeded.output, { text: 'hi' });
  });

  it('runs a processor as a worker would and captures its log lines', async () => {
    const samples = samplePredictions();
    const run = await runProcessorOnce(wantsSucceeded, samples.succeeded, {
      query: { customId: '42' },
      attempt: 3,
    });
    assert.equal(run.outcome, 'succeeded');
    assert.equal(run.ctx.attempt, 3);
    assert.equal(run.ctx.logs.length, 1);
    assert.equal(run.ctx.logs[0]?.msg, 'saved');
    assert.equal(run.ctx.logs[0]?.customId, '42');
    assert.deepEqual(run.ctx.logs[0]?.urls, samples.succeeded.output);
  });

  it('skips a status the processor does not want', async () => {
    const run = await runProcessorOnce(wantsSucceeded, samplePredictions().processing);
    assert.equal(run.outcome, 'skipped');
  });

  it('reports failures: retried, unrecoverable, timed out', async () => {
    const prediction = samplePredictions().succeeded;
    const flaky = defineProcessor({
      name: 'flaky',
      handle() {
        throw new Error('bucket does not exist');
      },
    });
    const hopeless = defineProcessor({
      name: 'hopeless',
      handle() {
        throw new UnrecoverableError('input can never work');
      },
    });
    const slow = defineProcessor({
      name: 'slow',
      timeoutMs: 50,
      handle: (_p, ctx) =>
        new Promise<void>((_, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        }),
    });
    const failed = await runProcessorOnce(flaky, prediction);
    assert.equal(failed.outcome, 'failed');
    assert.ok(failed.outcome === 'failed' && !failed.unrecoverable && !failed.timedOut);
    assert.equal(failed.outcome === 'failed' && failed.error.message, 'bucket does not exist');
    const dead = await runProcessorOnce(hopeless, prediction);
    assert.ok(dead.outcome === 'failed' && dead.unrecoverable);
    const late = await runProcessorOnce(slow, prediction);
    assert.ok(late.outcome === 'failed' && late.timedOut, 'timed out');
  });

  it('passes a given signal through to the processor', async () => {
    const controller = new AbortController();
    const waits = defineProcessor({
      name: 'waits',
      handle: (_p, ctx) =>
        new Promise<void>((_, reject) => {
          const stop = () => reject(new Error('stopped'));
          if (ctx.signal.aborted) stop();
          ctx.signal.addEventListener('abort', stop, { once: true });
        }),
    });
    const running = runProcessorOnce(waits, samplePredictions().succeeded, {
      signal: controller.signal,
    });
    controller.abort();
    const run = await running;
    assert.ok(run.outcome === 'failed' && run.error.message === 'stopped');
  });

  it('makes a context double with a fresh webhook id', () => {
    const ctx = createTestContext();
    assert.match(ctx.webhookId, /^msg_/);
    assert.equal(ctx.attempt, 1);
    assert.equal(ctx.signal.aborted, false);
    ctx.log.warn({ n: 1 }, 'careful');
    assert.equal(ctx.logs[0]?.level, 40);
  });
});
