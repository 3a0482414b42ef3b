import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { OutputStore } from './output-store.js';

/**
 * Output files in a directory (a compose volume, say). Each file is written under a temporary
 * name and renamed into place, so a reader never sees half a file, and a crash leaves only a
 * `.part-…` file that the next run replaces.
 */
export class FileOutputStore implements OutputStore {
  private readonly root: string;

  constructor(url: URL) {
    this.root = resolve(fileURLToPath(url));
  }

  private path(key: string): string {
    const path = resolve(this.root, key);
    if (relative(this.root, path).startsWith('..') || !path.startsWith(this.root + sep)) {
      throw new Error(`output key ${JSON.stringify(key)} leaves the store's directory`);
    }
    return path;
  }

  locate(key: string): string {
    return pathToFileURL(this.path(key)).href;
  }

  async put(key: string, body: Readable, options: { signal: AbortSignal }): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const part = `${path}.part-${randomUUID()}`;
    try {
      await pipeline(body, createWriteStream(part), { signal: options.signal });
      await rename(part, path);
    } catch (error) {
      await rm(part, { force: true });
      throw error;
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await stat(this.path(key))).size;
    } catch {
      return null;
    }
  }

  async sha256(key: string): Promise<string | undefined> {
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(this.path(key)), hash);
    } catch {
      return undefined;
    }
    return hash.digest('hex');
  }

  async readJson(key: string): Promise<unknown | null> {
    try {
      return JSON.parse(await readFile(this.path(key), 'utf8'));
    } catch {
      return null;
    }
  }

  async writeJson(key: string, value: unknown): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const part = `${path}.part-${randomUUID()}`;
    await writeFile(part, `${JSON.stringify(value, null, 2)}\n`);
    await rename(part, path);
  }
}
