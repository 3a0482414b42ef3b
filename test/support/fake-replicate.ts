import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Prediction } from '../../src/core/prediction.js';

/** A scripted answer the fake gives instead of the real one, once. */
export interface Fault {
  status: number;
  headers?: Record<string, string>;
}

/**
 * Replicate's predictions API as a real HTTP server on a free port of 127.0.0.1:
 * `GET /v1/predictions` (newest first by `created_at`, cursor pages with an absolute `next`),
 * `GET /v1/predictions/{id}` (404 for unknown ids), a Bearer token check, scripted faults
 * (429 with `Retry-After`, 5xx) and a delay per request.
 */
export class FakeReplicate {
  readonly predictions = new Map<string, Prediction>();
  /** Every request, in order: path and query. */
  readonly requests: string[] = [];
  readonly faults: Fault[] = [];
  /** Ids answered by id but left out of the list (another account's predictions, say). */
  readonly unlisted = new Set<string>();
  pageSize = 100;
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;

  private constructor(
    private readonly server: Server,
    readonly token: string,
  ) {}

  static async start(token = 'r8_test_token'): Promise<FakeReplicate> {
    let fake: FakeReplicate | undefined;
    const server = createServer((req, res) => {
      fake?.handle(req, res).catch(() => res.destroy());
    });
    fake = new FakeReplicate(server, token);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Adds or replaces predictions (what Replicate knows). */
  put(...predictions: Prediction[]): void {
    for (const p of predictions) this.predictions.set(p.id, structuredClone(p));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push(req.url ?? '');
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        return json(res, 401, { detail: 'Invalid token.' });
      }
      const fault = this.faults.shift();
      if (fault) {
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(JSON.stringify({ detail: 'fault' }));
        return;
      }
      const url = new URL(req.url ?? '/', this.url);
      if (url.pathname === '/v1/predictions') return this.list(url, res);
      const match = /^\/v1\/predictions\/([^/]+)$/.exec(url.pathname);
      const prediction = match
        ? this.predictions.get(decodeURIComponent(match[1] ?? ''))
        : undefined;
      if (!prediction) return json(res, 404, { detail: 'Not found.' });
      return json(res, 200, prediction);
    } finally {
      this.inFlight -= 1;
    }
  }

  private list(url: URL, res: ServerResponse): void {
    const sorted = [...this.predictions.values()]
      .filter((p) => !this.unlisted.has(p.id))
      .sort((a, b) => b.created_at.localeCompare(a.created_at));
    const offset = Number(
      Buffer.from(url.searchParams.get('cursor') ?? '', 'base64url').toString() || 0,
    );
    const results = sorted.slice(offset, offset + this.pageSize);
    const more = offset + this.pageSize < sorted.length;
    const cursor = Buffer.from(String(offset + this.pageSize)).toString('base64url');
    json(res, 200, {
      previous: null,
      next: more ? `${this.url}/v1/predictions?cursor=${cursor}` : null,
      results,
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
