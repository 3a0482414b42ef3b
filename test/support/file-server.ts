import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Output files as replicate.delivery serves them, on a free port of 127.0.0.1: `files` by path,
 * optionally slow (sent in chunks with a pause between), and gone (404) once `expire()` is called,
 * as Replicate deletes them an hour after completion. `hits` counts GETs per path.
 */
export class FileServer {
  readonly files = new Map<string, { body: Buffer; type: string }>();
  readonly hits = new Map<string, number>();
  /** Pause between 64 KiB chunks, ms. */
  chunkDelayMs = 0;
  /** Leave out `content-length` (chunked), as some servers do. */
  noLength = false;
  private readonly expired: string[] = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<FileServer> {
    let files: FileServer | undefined;
    const server = createServer((req, res) => {
      files?.serve(req.url ?? '/', res).catch(() => res.destroy());
    });
    files = new FileServer(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return files;
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  /** Serves `body` at `path`; returns its URL. */
  add(path: string, body: Buffer, type = 'image/webp'): string {
    this.files.set(path, { body, type });
    return this.url(path);
  }

  /** From now on, paths starting with `prefix` answer 404. */
  expire(prefix = '/'): void {
    this.expired.push(prefix);
  }

  get totalHits(): number {
    return [...this.hits.values()].reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async serve(path: string, res: import('node:http').ServerResponse): Promise<void> {
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    const file = this.files.get(path);
    if (!file || this.expired.some((prefix) => path.startsWith(prefix))) {
      res.writeHead(404).end('not found');
      return;
    }
    const headers: Record<string, string | number> = { 'content-type': file.type };
    if (!this.noLength) headers['content-length'] = file.body.length;
    res.writeHead(200, headers);
    for (let at = 0; at < file.body.length; at += 65_536) {
      if (res.destroyed) return;
      if (!res.write(file.body.subarray(at, at + 65_536))) await once(res, 'drain');
      if (this.chunkDelayMs > 0) await new Promise((r) => setTimeout(r, this.chunkDelayMs));
    }
    res.end();
  }
}
