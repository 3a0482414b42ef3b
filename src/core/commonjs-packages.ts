import { createRequire } from 'node:module';
import type * as BullMQ from 'bullmq';
import type * as IORedis from 'ioredis';

/**
 * BullMQ and ioredis, loaded with `require` rather than `import`.
 *
 * Both are CommonJS (BullMQ's package has no `exports` map and its `main` is dist/cjs), so either
 * way Node loads the same module, and a user's `import { UnrecoverableError } from 'bullmq'` gets
 * the very class inlet's worker checks. But when ESM code imports them, Node 20 first scans their
 * index and every file it re-exports with cjs-module-lexer, to list the named exports. Measured
 * on 2 cores, 6 runs each: BullMQ took 0.48 s of CPU to import against 0.30 s to require, and
 * ioredis 0.34 s against 0.23 s. Every `inlet` command and every test file paid it (npm test
 * starts about 170 such processes).
 *
 * Types still come from the packages themselves: `import type { Queue } from 'bullmq'`.
 */
const require = createRequire(import.meta.url);

export const bullmq = require('bullmq') as typeof BullMQ;
export const ioredis = require('ioredis') as typeof IORedis;
