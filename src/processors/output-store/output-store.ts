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
