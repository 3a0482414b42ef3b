import { setTimeout as sleep } from 'node:timers/promises';
import type { Prediction } from '../core/prediction.js';

/**
 * The two read calls the reconciler makes to Replicate's API, on plain `fetch`.
 *
 * Why not the official `replicate` npm client: it takes a base URL and a fetch, and has
 * `predictions.list()` and `paginate()`, but it retries 429 and 5xx answers on its own, inside
 * each call, with a schedule of its own. The reconciler must count every request against a page
 * budget, stop a pass (not sleep inside it) when `Retry-After` asks for longer than a pass may
 * wait, report each error to its metrics, and never send the token to a host other than the
 * configured one (a `next` cursor URL is followed only on the same origin). That is easier to
 * guarantee in 150 lines over `fetch` than around a client that hides its retries, and it adds
 * no dependency.
 */

/** One page of `GET /v1/predictions`: newest first, `next` is the older page's URL. */
export interface PredictionPage {
  results: Prediction[];
  next: string | null;
}

/** Why an API call did not give an answer: what the metrics count. */
export type ApiErrorKind = 'rate_limited' | 'server' | 'network' | 'refused' | 'unexpected';

/** The API refused or failed for good in this pass; the message is one line without the token. */
export class ReplicateApiError extends Error {
  override name = 'ReplicateApiError';
  constructor(
    message: string,
    readonly kind: ApiErrorKind,
    /** For `rate_limited`: seconds the API asked to wait. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The pass ran out of its request budget. */
export class BudgetExhaustedError extends Error {
  override name = 'BudgetExhaustedError';
}

export interface ReplicateClientOptions {
  /** e.g. `https://api.replicate.com`; a path on it is kept (for proxies). */
  baseUrl: string;
  token: string;
  /** Most requests, retries included, this client makes. */
  budget: number;
  /** Per request. @defaultValue `15000` */
  timeoutMs?: number;
  /** Tries per call on 5xx, network errors and short 429s. @defaultValue `4` */
  tries?: number;
  /** First backoff after a 5xx or network error, doubled each time, jittered. @defaultValue `1000` */
  backoffMs?: number;
  /** The longest `Retry-After` waited for inside a pass; longer ends the pass. @defaultValue `60` */
  maxRetryAfterSeconds?: number;
  /** Aborts waits and requests: the pass lost its lease, or the process stops. */
  signal?: AbortSignal;
  /** Called once per request with its result, for metrics. */
  onRequest?: (call: 'list' | 'get', outcome: 'ok' | ApiErrorKind) => void;
}

/** A budgeted, retrying reader of Replicate's predictions API. */
export class ReplicateClient {
  private readonly base: URL;
  /** Requests made so far (each retry counts). */
  requests = 0;

  constructor(private readonly options: ReplicateClientOptions) {
    this.base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
  }

  /** A page of predictions: the newest when `pageUrl` is left out, else the `next` of an earlier one. */
  async listPredictions(pageUrl?: string): Promise<PredictionPage> {
    const url = pageUrl ? this.sameOrigin(pageUrl) : new URL('v1/predictions', this.base);
    const body = (await this.request('list', url)) as Partial<PredictionPage> | null;
    if (!body || !Array.isArray(body.results)) {
      throw new ReplicateApiError(`${url.pathname} answered without results`, 'unexpected');
    }
    return { results: body.results, next: typeof body.next === 'string' ? body.next : null };
  }

  /** One prediction by id, or `null` when the API does not know it (404). */
  async getPrediction(id: string): Promise<Prediction | null> {
    const url = new URL(`v1/predictions/${encodeURIComponent(id)}`, this.base);
    return (await this.request('get', url)) as Prediction | null;
  }

  /** Requests left in the budget. */
  get remaining(): number {
    return this.options.budget - this.requests;
  }

  private sameOrigin(pageUrl: string): URL {
    const url = new URL(pageUrl, this.base);
    if (url.origin !== this.base.origin) {
      throw new ReplicateApiError(
        `the API's next page is on ${url.origin}, not ${this.base.origin}; not following it`,
        'unexpected',
      );
    }
    return url;
  }

  private async request(call: 'list' | 'get', url: URL): Promise<unknown> {
    const {
      tries = 4,
      backoffMs = 1000,
      maxRetryAfterSeconds = 60,
      timeoutMs = 15_000,
    } = this.options;
    for (let attempt = 1; ; attempt++) {
      if (this.requests >= this.options.budget) {
        throw new BudgetExhaustedError(`request budget of ${this.options.budget} used up`);
      }
      this.requests += 1;
      const outcome = await this.once(url, timeoutMs);
      this.options.onRequest?.(call, outcome.kind);
      if (outcome.kind === 'ok') return outcome.body;
      const last = attempt >= tries;
      if (outcome.kind === 'rate_limited') {
        const wait = outcome.retryAfter ?? backoffMs / 1000;
        if (last || wait > maxRetryAfterSeconds) {
          throw new ReplicateApiError(
            `rate limited (429); Retry-After ${wait} s`,
            'rate_limited',
            wait,
          );
        }
        await sleep(wait * 1000, undefined, { signal: this.options.signal });
        continue;
      }
      if (outcome.kind === 'refused' || outcome.kind === 'unexpected' || last) {
        throw new ReplicateApiError(outcome.message, outcome.kind);
      }
      const delay = backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
      await sleep(delay, undefined, { signal: this.options.signal });
    }
  }

  private async once(
    url: URL,
    timeoutMs: number,
  ): Promise<
    | { kind: 'ok'; body: unknown }
    | { kind: 'rate_limited'; retryAfter: number | undefined }
    | { kind: Exclude<ApiErrorKind, 'rate_limited'>; message: string }
  > {
    const signals = [AbortSignal.timeout(timeoutMs)];
    if (this.options.signal) signals.push(this.options.signal);
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${this.options.token}`, 'user-agent': 'inlet-reconcile' },
        redirect: 'error',
        signal: AbortSignal.any(signals),
      });
    } catch (error) {
      if (this.options.signal?.aborted) throw this.options.signal.reason;
      return { kind: 'network', message: `cannot reach ${url.origin}: ${cause(error)}` };
    }
    if (response.status === 404 && url.pathname.includes('/predictions/')) {
      await response.body?.cancel();
      return { kind: 'ok', body: null };
    }
    if (response.status === 429) {
      await response.body?.cancel();
      return { kind: 'rate_limited', retryAfter: retryAfterSeconds(response.headers) };
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return {
        kind: 'refused',
        message: `Replicate refused the token (${response.status}): check REPLICATE_API_TOKEN`,
      };
    }
    if (response.status >= 500) {
      await response.body?.cancel();
      return {
        kind: 'server',
        message: `Replicate answered ${response.status} for ${url.pathname}`,
      };
    }
    if (!response.ok) {
      await response.body?.cancel();
      return {
        kind: 'unexpected',
        message: `Replicate answered ${response.status} for ${url.pathname}`,
      };
    }
    try {
      return { kind: 'ok', body: await response.json() };
    } catch (error) {
      if (this.options.signal?.aborted) throw this.options.signal.reason;
      return { kind: 'server', message: `unreadable answer for ${url.pathname}: ${cause(error)}` };
    }
  }
}

/** `Retry-After` as seconds: a number of seconds or an HTTP date. */
function retryAfterSeconds(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

function cause(error: unknown): string {
  const err = error as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return 'no answer in time';
  return err.cause?.code ?? err.cause?.message ?? err.message;
}
