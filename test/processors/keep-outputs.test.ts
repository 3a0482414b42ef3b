import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import S3rver from 's3rver';
import keepOutputs, {
  type OutputManifest,
  storedOutputs,
} from '../../src/processors/keep-outputs.js';
import type { ProcessorContext } from '../../src/workers/processor.js';
import { samplePrediction } from '../support/deliveries.js';
import { FileServer } from '../support/file-server.js';
import { waitFor } from '../support/wait-for.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function context(signal = new AbortController().signal): ProcessorContext {
  return {
    webhookId: 'msg_test',
    attempt: 1,
    log: pino({ level: 'silent' }),
    signal,
    query: {},
    receivedAt: new Date(),
    source: 'webhook',
  };
}

/** Runs keep-outputs against `storeUrl`, as a worker would. */
async function keep(
  prediction: ReturnType<typeof samplePrediction>,
  storeUrl: string,
  options: { signal?: AbortSignal; maxBytes?: number } = {},
) {
  process.env.INLET_OUTPUT_STORE_URL = storeUrl;
  if (options.maxBytes) process.env.INLET_OUTPUT_MAX_BYTES = String(options.maxBytes);
  else delete process.env.INLET_OUTPUT_MAX_BYTES;
  await keepOutputs.handle(prediction, context(options.signal));
}

let files: FileServer;
let dir: string;

before(async () => {
  files = await FileServer.start();
  dir = mkdtempSync(join(tmpdir(), 'inlet-outputs-'));
});
after(async () => {
  await files.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('keep-outputs into a directory', () => {
  it('stores every output file byte for byte with a manifest, and a re-run downloads nothing', async () => {
    const a = randomBytes(300_000);
    const b = randomBytes(1_000);
    const png = randomBytes(64);
    const prediction = samplePrediction('succeeded');
    prediction.output = {
      images: [
        files.add(`/${prediction.id}/out-0.webp`, a),
        files.add(`/${prediction.id}/out-1.webp`, b),
      ],
      thumbnail: `data:image/png;base64,${png.toString('base64')}`,
      caption: 'not a file',
    };
    const store = pathToFileURL(join(dir, 'one')).href;
    await keep(prediction, store);

    const manifest = JSON.parse(
      readFileSync(join(dir, 'one', prediction.id, 'manifest.json'), 'utf8'),
    ) as OutputManifest;
    assert.ok(manifest.storedAt);
    assert.deepEqual(
      manifest.files.map((f) => [f.path, f.key, f.bytes, f.sha256]),
      [
        ['output.images[0]', `${prediction.id}/0-out-0.webp`, a.length, sha256(a)],
        ['output.images[1]', `${prediction.id}/1-out-1.webp`, b.length, sha256(b)],
        ['output.thumbnail', `${prediction.id}/2-output.png`, png.length, sha256(png)],
      ],
    );
    assert.equal(manifest.files[2]?.contentType, 'image/png');
    assert.match(manifest.files[2]?.source ?? '', /^data:image\/png;base64,… \(\d+ characters\)$/);
    for (const [file, bytes] of [
      ['0-out-0.webp', a],
      ['1-out-1.webp', b],
      ['2-output.png', png],
    ] as const) {
      assert.ok(readFileSync(join(dir, 'one', prediction.id, file)).equals(bytes), file);
    }
    assert.equal(files.totalHits, 2);

    await keep(prediction, store);
    assert.equal(files.totalHits, 2, 'a re-run downloads nothing twice');

    const stored = await storedOutputs(prediction.id, store);
    assert.equal(
      stored?.[0]?.location,
      pathToFileURL(join(dir, 'one', prediction.id, '0-out-0.webp')).href,
    );
  });

  it('re-downloads a stored file that was damaged, and fails for good once the source expired', async () => {
    const body = randomBytes(5_000);
    const prediction = samplePrediction('succeeded');
    const path = `/${prediction.id}/out.webp`;
    prediction.output = files.add(path, body);
    const store = pathToFileURL(join(dir, 'two')).href;
    await keep(prediction, store);
    const onDisk = join(dir, 'two', prediction.id, '0-out.webp');
    const damaged = Buffer.from(body);
    damaged[0] = (damaged[0] ?? 0) ^ 0xff;
    await import('node:fs/promises').then((fs) => fs.writeFile(onDisk, damaged));

    await keep(prediction, store);
    assert.equal(files.hits.get(path), 2, 'the damaged copy was fetched again');
    assert.ok(readFileSync(onDisk).equals(body));

    // Replicate deletes the file: what was stored stays usable, and a re-run needs no download.
    files.expire(`/${prediction.id}/`);
    await keep(prediction, store);
    assert.equal(files.hits.get(path), 2);
    // Where nothing was stored in time, the run fails for good: no retry brings the file back.
    await assert.rejects(
      keep(prediction, pathToFileURL(join(dir, 'late')).href),
      (error: Error) => {
        assert.equal(error.name, 'UnrecoverableError');
        assert.match(error.message, /gone \(404\).*after an hour/);
        return true;
      },
    );
  });

  it('refuses a file over the size limit, even without content-length, leaving nothing behind', async () => {
    const big = samplePrediction('succeeded');
    big.output = [files.add(`/${big.id}/big.bin`, randomBytes(200_000))];
    const store = pathToFileURL(join(dir, 'three')).href;
    files.noLength = true;
    try {
      await assert.rejects(keep(big, store, { maxBytes: 100_000 }), /INLET_OUTPUT_MAX_BYTES/);
    } finally {
      files.noLength = false;
    }
    const left = readdirSync(join(dir, 'three', big.id));
    assert.deepEqual(
      left.filter((f) => f !== 'manifest.json'),
      [],
    );
  });

  it('stops when ctx.signal is aborted, storing no partial file', async () => {
    const slow = samplePrediction('succeeded');
    slow.output = [files.add(`/${slow.id}/slow.bin`, randomBytes(2_000_000))];
    const store = pathToFileURL(join(dir, 'four')).href;
    files.chunkDelayMs = 20;
    const controller = new AbortController();
    try {
      const run = keep(slow, store, { signal: controller.signal });
      setImmediate(() => controller.abort(new Error('worker stopping')));
      await assert.rejects(run);
    } finally {
      files.chunkDelayMs = 0;
    }
    let left: string[] = [];
    try {
      left = readdirSync(join(dir, 'four', slow.id));
    } catch {
      // nothing was created at all
    }
    assert.deepEqual(
      left.filter((f) => !f.endsWith('manifest.json')),
      [],
    );
  });
});

describe('keep-outputs into S3 (s3rver, a real S3-protocol server)', () => {
  let s3: S3rver;
  let s3dir: string;
  let endpoint: string;

  before(async () => {
    s3dir = mkdtempSync(join(tmpdir(), 'inlet-s3-'));
    s3 = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: s3dir,
      configureBuckets: [{ name: 'outputs' }],
    });
    const address = await s3.run();
    endpoint = `http://127.0.0.1:${address.port}`;
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    });
  });
  after(async () => {
    await s3.close();
    rmSync(s3dir, { recursive: true, force: true });
  });

  it('streams files up (multipart past 8 MiB), byte-identical, and a re-run downloads nothing', {
    timeout: 60_000,
  }, async () => {
    const large = randomBytes(9 * 1024 * 1024);
    const small = randomBytes(10_000);
    const prediction = samplePrediction('succeeded');
    prediction.output = [
      files.add(`/${prediction.id}/large.bin`, large, 'application/octet-stream'),
      files.add(`/${prediction.id}/small.webp`, small),
    ];
    const before = files.totalHits;
    await keep(prediction, 's3://outputs/kept');
    assert.equal(files.totalHits - before, 2);

    const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
    const get = async (key: string) => {
      const object = await client.send(new GetObjectCommand({ Bucket: 'outputs', Key: key }));
      return Buffer.from((await object.Body?.transformToByteArray()) ?? []);
    };
    // s3rver answers a PUT before its file is whole: poll until an object has its full size.
    const whole = async (key: string, ok: (body: Buffer) => boolean) => {
      let body = Buffer.alloc(0);
      await waitFor(
        `${key} whole`,
        async () => {
          body = await get(key);
          return ok(body);
        },
        { timeoutMs: 5_000 },
      );
      return body;
    };
    const parses = (body: Buffer) => {
      try {
        JSON.parse(body.toString('utf8'));
        return true;
      } catch {
        return false;
      }
    };
    const kept = (name: string, size: number) =>
      whole(`kept/${prediction.id}/${name}`, (body) => body.length === size);
    assert.ok((await kept('0-large.bin', large.length)).equals(large));
    assert.ok((await kept('1-small.webp', small.length)).equals(small));
    const manifest = JSON.parse(
      (await whole(`kept/${prediction.id}/manifest.json`, parses)).toString('utf8'),
    ) as OutputManifest;
    assert.deepEqual(
      manifest.files.map((f) => [f.location, f.bytes, f.sha256]),
      [
        [`s3://outputs/kept/${prediction.id}/0-large.bin`, large.length, sha256(large)],
        [`s3://outputs/kept/${prediction.id}/1-small.webp`, small.length, sha256(small)],
      ],
    );

    await keep(prediction, 's3://outputs/kept');
    assert.equal(files.totalHits - before, 2, 'a re-run downloads nothing twice');
    // s3rver answers a PUT before its file is whole, so a read right after may find it empty:
    // poll, as a reader of any eventually consistent store would.
    await waitFor(
      'the manifest readable',
      async () => (await storedOutputs(prediction.id, 's3://outputs/kept'))?.length === 2,
      { timeoutMs: 5_000 },
    );
    client.destroy();
  });
});
