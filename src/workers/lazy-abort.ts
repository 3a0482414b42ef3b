/**
 * An abort whose `AbortSignal` is made only when something reads it. Nearly every processor run
 * ends without reading `ctx.signal`, and an `AbortController` with its signal was the largest
 * cost of dispatching a delivery in the process: with the delivery's and the run's, 24 % of
 * dispatch's CPU (its own time) and much of its garbage.
 */
export class LazyAbort {
  private controller: AbortController | undefined;
  private listener: ((reason: unknown) => void) | undefined;
  private isAborted = false;
  private why: unknown;

  get aborted(): boolean {
    return this.isAborted;
  }

  /** Why it was aborted; `undefined` until then. */
  get reason(): unknown {
    return this.why;
  }

  /** The signal, made on first read; already aborted, with the reason, when this was. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** Aborts the signal (if it was made) and tells the follower; later calls do nothing. */
  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.why = reason;
    this.controller?.abort(reason);
    this.listener?.(reason);
  }

  /**
   * Calls `listener` once this aborts, at once when it already has. One follower at a time (a
   * delivery runs one processor at a time); returns the way to stop following.
   */
  follow(listener: (reason: unknown) => void): () => void {
    if (this.isAborted) {
      listener(this.why);
      return () => undefined;
    }
    this.listener = listener;
    return () => {
      if (this.listener === listener) this.listener = undefined;
    };
  }
}
