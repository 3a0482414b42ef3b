import { createRequire } from 'node:module';

/**
 * The one BullMQ version whose private scripts inlet wraps: `addStandardJob` (storeDelivery-11)
 * and the two that hand a worker its next job, `moveToActive` and `moveToFinished`
 * (fetch-and-begin.ts). package.json pins bullmq to exactly this version; {@link bullmqScript}
 * refuses any other, and test/core/scripts/ compares what the wrapped scripts do with what
 * BullMQ's own do, so that an upgrade is a deliberate, tested change.
 */
export const BULLMQ_VERSION = '6.7.0';

/** One of BullMQ's Lua scripts, as its Redis backend defines it. */
export interface BullmqScript {
  name: string;
  content: string;
  keys: number;
}

const require = createRequire(import.meta.url);

/**
 * BullMQ's own script `name` (with `keys` keys) of the installed version, checked. BullMQ does not
 * export its scripts from the package main; the CommonJS build is the one Node loads for
 * `bullmq`, so this is the very script BullMQ runs. Also checks that it reads no key past its
 * `keys` and, given `argc`, no argument past it ({@link readsOnly}): a wrapper hands it its own
 * KEYS and ARGV. Throws one line saying what is wrong and what to do.
 */
export function bullmqScript(name: string, keys: number, argc?: number): BullmqScript {
  const { version } = require('bullmq/dist/cjs/version.js') as { version: string };
  if (version !== BULLMQ_VERSION) {
    throw new Error(
      `bullmq ${version} is installed but inlet needs exactly ${BULLMQ_VERSION} (it wraps BullMQ's ${name} script): run npm ci, or install inlet-webhooks without overriding bullmq`,
    );
  }
  const script = (
    require(`bullmq/dist/cjs/scripts/${name}-${keys}.js`) as Record<string, BullmqScript>
  )[name];
  if (
    script?.keys !== keys ||
    typeof script.content !== 'string' ||
    !readsOnly(script.content, 'KEYS', keys) ||
    (argc !== undefined && !readsOnly(script.content, 'ARGV', argc))
  ) {
    throw new Error(`bullmq ${version}: its ${name} script is not the one inlet wraps`);
  }
  return script;
}

/** The ioredis command BullMQ runs `name` by on its connections: `<name>:<version>`. */
export function bullmqCommand(name: string): string {
  return `${name}:${BULLMQ_VERSION}`;
}

/**
 * Whether Lua `content` reads no entry of `table` (KEYS or ARGV) past `count` and never the whole
 * table, so that a wrapper may hand it a table with entries of its own after those
 * (storeDelivery-11, fetch-and-begin.ts).
 */
export function readsOnly(content: string, table: 'KEYS' | 'ARGV', count: number): boolean {
  const uses = content.match(new RegExp(`${table}\\s*(\\[[^\\]]*\\])?`, 'g')) ?? [];
  return uses.every((use) => {
    const index = /^[A-Z]+\s*\[(\d+)\]$/.exec(use);
    return index !== null && Number(index[1]) <= count;
  });
}
