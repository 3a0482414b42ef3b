import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LazyAbort } from '../../src/workers/lazy-abort.js';

describe('LazyAbort', () => {
  it('makes a signal that is already aborted, with the reason, when read after the abort', () => {
    const abort = new LazyAbort();
    const reason = new Error('worker stopping');
    abort.abort(reason);
    assert.equal(abort.aborted, true);
    assert.equal(abort.signal.aborted, true);
    assert.equal(abort.signal.reason, reason);
  });

  it('aborts a signal read before the abort, once, with the first reason', () => {
    const abort = new LazyAbort();
    const signal = abort.signal;
    let events = 0;
    signal.addEventListener('abort', () => events++);
    assert.equal(signal.aborted, false);
    const first = new Error('first');
    abort.abort(first);
    abort.abort(new Error('second'));
    assert.equal(events, 1);
    assert.equal(signal.reason, first);
    assert.equal(abort.reason, first);
  });

  it('tells its follower once, at once when already aborted, and not after it stopped following', () => {
    const abort = new LazyAbort();
    const heard: unknown[] = [];
    const stop = abort.follow((reason) => heard.push(reason));
    stop();
    abort.abort('a');
    assert.equal(heard.length, 0);
    abort.follow((reason) => heard.push(reason));
    assert.deepEqual(heard, ['a']);
  });

  it('passes an abort to the current follower', () => {
    const abort = new LazyAbort();
    const heard: unknown[] = [];
    abort.follow((reason) => heard.push(reason));
    abort.abort('lock lost');
    assert.deepEqual(heard, ['lock lost']);
  });
});
