import type { Readable } from 'node:stream';

/** Durable storage for output files: a directory, or an S3-compatible bucket. */
export interface OutputStore {
  /** Where `key` lives, as a URL a person or a later processor can use (`file:///…`, `s3://…`). */
  locate(key: string): string;
  /** Streams `body` to `key`; the object appears whole or not at all. */
  put(
    key: string,
    body: Readable,
    options: { contentType: string; signal: AbortSignal },
  ): Promise<void>;
  /** The stored object's size, or `null` when there is none. */
  size(key: string): Promise<number | null>;
  /** The stored object's sha256 (hex) when the store can tell it cheaply, else `undefined`. */
  sha256?(key: string): Promise<string | undefined>;
  readJson(key: string): Promise<unknown | null>;
  writeJson(key: string, value: unknown): Promise<void>;
}

/**
 * Opens the store a URL names: `file:///abs/dir` (a directory) or `s3://bucket/prefix`. The S3
 * client is loaded only when used, so a directory store costs no AWS SDK.
 */
export async function openOutputStore(url: string): Promise<OutputStore> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') {
    const { FileOutputStore } = await import('./file.js');
    return new FileOutputStore(parsed);
  }
  if (parsed.protocol === 's3:') {
    const { S3OutputStore } = await import('./s3.js');
    return new S3OutputStore(parsed);
  }
  throw new Error(
    `INLET_OUTPUT_STORE_URL: expected file:///dir or s3://bucket/prefix, got ${parsed.protocol}`,
  );
}
