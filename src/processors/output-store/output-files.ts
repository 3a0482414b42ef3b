import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { bullmq } from '../../core/commonjs-packages.js';

/** One file among a prediction's outputs. */
export interface OutputFile {
  /** Where it sits in `prediction.output`, e.g. `output[0]` or `output.images[2]`. */
  path: string;
  /** Its URL: `https://…` or a `data:` URI. */
  source: string;
  /** The key it is stored under, the same on every run: `<prediction>/<n>-<name>`. */
  key: string;
}

/**
 * Every file URL in an output, in a fixed order: a URL, an array of them, or objects holding
 * them, to any depth. Strings that are not `http(s):` or `data:` URLs are not files.
 */
export function outputFiles(predictionId: string, output: unknown): OutputFile[] {
  const files: OutputFile[] = [];
  const visit = (value: unknown, path: string) => {
    if (typeof value === 'string') {
      if (/^https?:\/\//i.test(value) || /^data:/i.test(value)) {
        const n = files.length;
        files.push({
          path,
          source: value,
          key: `${safeId(predictionId)}/${n}-${fileName(value, n)}`,
        });
      }
    } else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) visit(item, `${path}[${i}]`);
    } else if (value !== null && typeof value === 'object') {
      for (const [name, item] of Object.entries(value).sort(([a], [b]) => a.localeCompare(b))) {
        visit(item, `${path}.${name}`);
      }
    }
  };
  visit(output, 'output');
  return files;
}

function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_');
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'audio/wav': 'wav',
  'audio/mpeg': 'mp3',
  'video/mp4': 'mp4',
  'text/plain': 'txt',
  'application/json': 'json',
};

/** A file name from the URL's last path segment, or `output.<ext>` for a `data:` URI. */
function fileName(source: string, n: number): string {
  if (/^data:/i.test(source)) {
    const mime = /^data:([^;,]*)/i.exec(source)?.[1]?.toLowerCase() ?? '';
    return `output.${EXTENSIONS[mime] ?? 'bin'}`;
  }
  const last = decodeURIComponent(new URL(source).pathname.split('/').pop() ?? '');
  const name = last
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '')
    .slice(-100);
  return name || `output-${n}`;
}

/** An open source stream, with what the server said of it. */
export interface OpenedFile {
  body: Readable;
  contentType: string;
}

/**
 * Opens an output file for streaming. An expired file (404, 410: Replicate deletes API
 * predictions' files after an hour) or one over `maxBytes` fails with `UnrecoverableError`:
 * no retry can bring it back. Other failures throw plain errors, so the delivery is retried.
 */
export async function openOutputFile(
  source: string,
  options: { signal: AbortSignal; maxBytes: number },
): Promise<OpenedFile> {
  if (/^data:/i.test(source)) return openDataUri(source, options.maxBytes);
  const response = await fetch(source, { signal: options.signal });
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel();
    throw new bullmq.UnrecoverableError(
      `output ${source} is gone (${response.status}): Replicate deletes files of API predictions after an hour`,
    );
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`download of ${source} failed: ${response.status}`);
  }
  const length = Number(response.headers.get('content-length'));
  if (length > options.maxBytes) {
    await response.body.cancel();
    throw new bullmq.UnrecoverableError(
      `output ${source} is ${length} bytes, over INLET_OUTPUT_MAX_BYTES`,
    );
  }
  return {
    body: Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
    contentType: response.headers.get('content-type') ?? 'application/octet-stream',
  };
}

function openDataUri(source: string, maxBytes: number): OpenedFile {
  const match = /^data:([^,]*?),(.*)$/is.exec(source);
  if (!match) throw new bullmq.UnrecoverableError('an output data: URI is malformed');
  const meta = match[1] ?? '';
  const data = match[2] ?? '';
  const base64 = /;base64$/i.test(meta);
  const bytes = base64 ? Buffer.from(data, 'base64') : Buffer.from(decodeURIComponent(data));
  if (bytes.length > maxBytes) {
    throw new bullmq.UnrecoverableError(
      `an output data: URI is ${bytes.length} bytes, over INLET_OUTPUT_MAX_BYTES`,
    );
  }
  const contentType = meta.replace(/;base64$/i, '') || 'text/plain;charset=US-ASCII';
  return { body: Readable.from([bytes]), contentType };
}

/**
 * A pass-through that counts bytes and hashes them as they go by, and fails once more than
 * `maxBytes` passed (a server that sent no or a false `content-length`).
 */
export class MeasuringStream extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error) => void) {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(
        new bullmq.UnrecoverableError(
          `an output is over INLET_OUTPUT_MAX_BYTES (${this.maxBytes})`,
        ),
      );
      return;
    }
    this.hash.update(chunk);
    this.push(chunk);
    done();
  }

  private digest: string | undefined;

  /** The sha256 (hex) of everything that passed; call once the stream has ended. */
  get sha256(): string {
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }
}

/** A `data:` URI as the manifest shows it: its type and size, not its bytes. */
export function describeSource(source: string): string {
  if (!/^data:/i.test(source)) return source;
  return `${source.slice(0, source.indexOf(',') + 1)}… (${source.length} characters)`;
}
