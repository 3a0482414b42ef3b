import type { OutputStore } from './output-store.js';

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
