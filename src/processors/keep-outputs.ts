/**
 * The built-in `keep-outputs` processor: copies every output file of a succeeded prediction to
 * durable storage before Replicate deletes it (an hour after completion, for API predictions).
 * Enable it like your own, by its path: in the Docker image
 * `INLET_PROCESSORS=./dist/processors/keep-outputs.js,./processors/mine.js`; in a project that
 * depends on inlet, `./node_modules/inlet-webhooks/dist/processors/keep-outputs.js`.
 *
 * Where: `INLET_OUTPUT_STORE_URL`, `file:///dir` (default `./outputs`) or `s3://bucket/prefix`.
 * What: `<prediction id>/<n>-<file name>` per file, and `<prediction id>/manifest.json` listing
 * each file's source URL, key, location, bytes, sha256 and content type. A later processor of the
 * same delivery finds them with {@link storedOutputs}. A re-run skips files the manifest lists
 * and the store still holds at the same size (and, in a directory, the same sha256).
 *
 * Written as a user's processor would be; in a project of your own, import from 'inlet-webhooks'.
 */
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import type { Prediction } from '../core/prediction.js';
import { defineProcessor } from '../workers/processor.js';
import { openOutputStore } from './output-store/open-output-store.js';
import {
  describeSource,
  MeasuringStream,
  openOutputFile,
  outputFiles,
} from './output-store/output-files.js';
import type { OutputStore } from './output-store/output-store.js';
import { recordOutputsStored } from './output-store/stored-figures.js';

/** One stored file, as the manifest lists it. */
export interface StoredOutput {
  /** Where it sat in `prediction.output`, e.g. `output[0]`. */
  path: string;
  /** The URL it was copied from (a `data:` URI is shown by type and size only). */
  source: string;
  key: string;
  /** `file:///…` or `s3://bucket/key`. */
  location: string;
  bytes: number;
  sha256: string;
  contentType: string;
}

/** `<prediction id>/manifest.json` in the store. */
export interface OutputManifest {
  predictionId: string;
  completedAt: string | null;
  /** When the last file was stored; `null` while some are still missing. */
  storedAt: string | null;
  files: StoredOutput[];
}

const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

/** The store `INLET_OUTPUT_STORE_URL` names; read at each run, so that a test can change it. */
export function outputStoreUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.INLET_OUTPUT_STORE_URL || pathToFileURL(`${process.cwd()}/outputs`).href;
}

export function manifestKey(predictionId: string): string {
  return `${predictionId.replace(/[^A-Za-z0-9_-]/g, '_')}/manifest.json`;
}

/**
 * The files keep-outputs stored for a prediction, or `null` when it stored none (yet). For a
 * processor listed after keep-outputs in `INLET_PROCESSORS`: it runs after keep-outputs has
 * succeeded on the delivery, so the manifest is complete by then.
 */
export async function storedOutputs(
  predictionId: string,
  storeUrl = outputStoreUrl(),
): Promise<StoredOutput[] | null> {
  const store = await openOutputStore(storeUrl);
  const manifest = (await store.readJson(manifestKey(predictionId))) as OutputManifest | null;
  return manifest?.storedAt ? manifest.files : null;
}

export default defineProcessor({
  name: 'keep-outputs',
  statuses: ['succeeded'],
  async handle(prediction, ctx) {
    const store = await openOutputStore(outputStoreUrl());
    const maxBytes = Number(process.env.INLET_OUTPUT_MAX_BYTES) || DEFAULT_MAX_BYTES;
    const files = outputFiles(prediction.id, prediction.output);
    const manifest = await startManifest(store, prediction);
    let fetched = 0;
    for (const file of files) {
      ctx.signal.throwIfAborted();
      const known = manifest.files.find((f) => f.key === file.key);
      if (known && (await stillStored(store, known))) continue;
      const opened = await openOutputFile(file.source, { signal: ctx.signal, maxBytes });
      const measure = new MeasuringStream(maxBytes);
      // The download flows through `measure` into the store: hashed and counted, never held
      // whole. Both sides settle before the run goes on, so a failed store has cleaned up.
      const settled = await Promise.allSettled([
        pipeline(opened.body, measure, { signal: ctx.signal }),
        store
          .put(file.key, measure, { contentType: opened.contentType, signal: ctx.signal })
          .catch((error: Error) => {
            measure.destroy(error);
            throw error;
          }),
      ]);
      const failed = settled.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      fetched += 1;
      manifest.files = manifest.files.filter((f) => f.key !== file.key);
      manifest.files.push({
        path: file.path,
        source: describeSource(file.source),
        key: file.key,
        location: store.locate(file.key),
        bytes: measure.bytes,
        sha256: measure.sha256,
        contentType: opened.contentType,
      });
      // Written after each file, so that a run cut short resumes after the last stored one.
      await store.writeJson(manifestKey(prediction.id), manifest);
    }
    manifest.storedAt = new Date().toISOString();
    await store.writeJson(manifestKey(prediction.id), manifest);
    const completed = Date.parse(prediction.completed_at ?? '');
    if (!Number.isNaN(completed)) recordOutputsStored(Math.max(0, (Date.now() - completed) / 1000));
    ctx.log.info(
      {
        files: files.length,
        fetched,
        manifest: store.locate(manifestKey(prediction.id)),
        secondsAfterCompletion: Number.isNaN(completed)
          ? undefined
          : Math.max(0, (Date.now() - completed) / 1000),
      },
      'outputs kept',
    );
  },
});

async function startManifest(store: OutputStore, prediction: Prediction): Promise<OutputManifest> {
  const existing = (await store.readJson(manifestKey(prediction.id))) as OutputManifest | null;
  return {
    predictionId: prediction.id,
    completedAt: prediction.completed_at ?? null,
    storedAt: null,
    files: Array.isArray(existing?.files) ? existing.files : [],
  };
}

/** A file the manifest lists is kept when the store holds it whole (and, if it can tell, intact). */
async function stillStored(store: OutputStore, file: StoredOutput): Promise<boolean> {
  if ((await store.size(file.key)) !== file.bytes) return false;
  if (!store.sha256) return true;
  return (await store.sha256(file.key)) === file.sha256;
}
