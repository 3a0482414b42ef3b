import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { OutputStore } from './output-store.js';

/**
 * Output files in an S3-compatible bucket (AWS S3, R2, MinIO), named by `s3://bucket/prefix`.
 * Region, endpoint and credentials come from the usual AWS variables: `AWS_REGION`,
 * `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`), `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
 * or any source of the SDK's default chain. With an endpoint set, requests use path-style
 * addressing (`AWS_S3_FORCE_PATH_STYLE=0` turns that off), as MinIO and most others need.
 * Files go up with lib-storage's `Upload`: multipart in 8 MiB parts, two at a time, so memory
 * stays bounded whatever the file's size.
 */
export class S3OutputStore implements OutputStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(url: URL, env: NodeJS.ProcessEnv = process.env) {
    this.bucket = url.hostname;
    this.prefix = url.pathname.replace(/^\/+|\/+$/g, '');
    if (!this.bucket) throw new Error('INLET_OUTPUT_STORE_URL: s3:// needs a bucket name');
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
    this.client = new S3Client({
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      endpoint,
      forcePathStyle: endpoint !== undefined && env.AWS_S3_FORCE_PATH_STYLE !== '0',
      // Checksums only where S3 requires them: S3-compatible servers differ in what they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private key(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  locate(key: string): string {
    return `s3://${this.bucket}/${this.key(key)}`;
  }

  async put(
    key: string,
    body: Readable,
    options: { contentType: string; signal: AbortSignal },
  ): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: this.key(key),
        Body: body,
        ContentType: options.contentType,
      },
      partSize: 8 * 1024 * 1024,
      queueSize: 2,
    });
    const abort = () => void upload.abort().catch(() => undefined);
    if (options.signal.aborted) abort();
    options.signal.addEventListener('abort', abort, { once: true });
    // A failing source stream must fail the upload, not leave it waiting for more bytes.
    const failed = new Promise<never>((_, reject) => body.once('error', reject));
    failed.catch(() => undefined);
    try {
      await Promise.race([upload.done(), failed]);
    } catch (error) {
      abort();
      throw error;
    } finally {
      options.signal.removeEventListener('abort', abort);
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }),
      );
      return head.ContentLength ?? null;
    } catch (error) {
      if (notFound(error)) return null;
      throw error;
    }
  }

  async readJson(key: string): Promise<unknown | null> {
    try {
      const object = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }),
      );
      return JSON.parse((await object.Body?.transformToString('utf8')) ?? 'null');
    } catch (error) {
      // Unreadable counts as absent: keep-outputs then stores the files again, which is safe.
      if (notFound(error) || error instanceof SyntaxError) return null;
      throw error;
    }
  }

  async writeJson(key: string, value: unknown): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(key),
        Body: `${JSON.stringify(value, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
  }
}

function notFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}
