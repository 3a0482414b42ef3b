import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { BatchedDestination } from './log-destination.js';

export type { Logger } from 'pino';

/** Paths that must never reach a log line, wherever a request or headers object is logged. */
const REDACT = [
  'headers["webhook-signature"]',
  'headers.authorization',
  'headers.cookie',
  'req.headers["webhook-signature"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'secret',
  'secrets',
  'token',
];

export interface LoggerSettings {
  level: string;
  /** Human-readable lines (pino-pretty) instead of JSON; for `inlet dev` on a terminal. */
  pretty?: boolean;
  /**
   * Write asynchronously, in batches (see {@link BATCH_BYTES}; flushed at exit), which keeps
   * logging off the request's critical path. @defaultValue `true`
   */
  async?: boolean;
  /** Fields on every line, e.g. `{ service: 'ingest' }`. */
  base?: Record<string, unknown>;
  /** Where JSON lines go instead of stdout (tests, embedding). */
  destination?: DestinationStream;
}

/** The top-level fields {@link REDACT} reaches into: {@link logLine} leaves those to pino. */
const REDACTED_FIELDS = new Set(REDACT.map((path) => path.split(/[.[]/)[0]));

/** Loggers made by {@link createLogger}: {@link logLine} knows how pino formats their lines. */
const ownLoggers = new WeakSet<Logger>();

/** Creates the process logger: JSON lines on stdout, secrets redacted. */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { pid: process.pid, ...settings.base },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (settings.pretty) {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  if (settings.destination) return own(pino(options, settings.destination));
  const destination =
    settings.async === false
      ? pino.destination({ dest: 1, sync: true })
      : new BatchedDestination(1, BATCH_BYTES, FLUSH_MS);
  const logger = pino(options, destination);
  // An asynchronous destination must be flushed before the process exits, or lines are lost.
  process.once('beforeExit', () => destination.flushSync());
  destinations.set(logger, destination);
  return own(logger);
}

/**
 * Lines are handed to the OS in writes of at least this many bytes (about 48 delivery lines), or
 * every {@link FLUSH_MS}, not one write each: each asynchronous write goes through libuv's thread
 * pool, 37 µs of CPU for 4 KiB and 39–42 for 12 KiB on the bench host, and one a line was about a
 * sixth of a worker's CPU per delivery. In alternating rounds a worker processed 11-19 % more
 * deliveries/s with 4 KiB writes, and with 12 KiB ones it took 108–117 against 110–119 µs of CPU
 * a delivery in 6 more (CHANGELOG). The price: a line reaches the log up to 50 ms later, and a
 * process killed with SIGKILL loses what it had not written yet (at most 50 ms of lines).
 */
const BATCH_BYTES = 12_288;
const FLUSH_MS = 50;

/** The destination of each logger made by {@link createLogger}. */
const destinations = new WeakMap<Logger, { flush(cb: () => void): void; flushSync(): void }>();

function own(logger: Logger): Logger {
  ownLoggers.add(logger);
  return logger;
}

/** What {@link logLine} writes as `JSON.stringify` does, which is what pino writes for them. */
export type LineValue =
  | string
  | number
  | boolean
  | undefined
  | readonly string[]
  | Readonly<Record<string, number>>;

/** The parts of a pino logger that hold its line's prefix and its destination. */
interface LoggerInternals {
  [pino.symbols.timeSym]: () => string;
  [pino.symbols.chindingsSym]: string;
  [pino.symbols.streamSym]: { write(line: string): unknown };
}

/**
 * Writes one line with flat `fields`, byte for byte the line `logger[level](fields, msg)` would
 * write (level, time, the logger's bindings, the fields in order, then msg; undefined fields left
 * out), for the one line per delivery that the ingest and the worker write. Written by hand
 * because that line was the largest cost either adds to what BullMQ does: in-process, pino took
 * 4.2 µs a line and this 3.7; with the callers no longer spreading their fields into a new object
 * (another 2.3 µs), a worker used 168–170 → 158–160 µs of CPU a delivery in alternating rounds
 * (4 pairs, CHANGELOG).
 * Only for loggers made by {@link createLogger}, whose options it knows (no formatters, mixin,
 * hooks or serializers); any other logger, such as one passed to the in-process API, and any
 * field that redaction reaches into (`token`, `headers`, …) get pino's own call.
 */
export function logLine(
  logger: Logger,
  level: 'info' | 'warn' | 'error',
  fields: Readonly<Record<string, LineValue>>,
  msg: string,
): void {
  if (!ownLoggers.has(logger)) {
    logger[level](fields, msg);
    return;
  }
  if (!logger.isLevelEnabled(level)) return;
  const internals = logger as unknown as LoggerInternals;
  let line = `{"level":${logger.levels.values[level]}${internals[pino.symbols.timeSym]()}${internals[pino.symbols.chindingsSym]}`;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    if (REDACTED_FIELDS.has(key)) {
      logger[level](fields, msg); // pino censors it
      return;
    }
    line += `,${JSON.stringify(key)}:${JSON.stringify(value)}`;
  }
  internals[pino.symbols.streamSym].write(`${line},"msg":${JSON.stringify(msg)}}\n`);
}

/**
 * Resolves once every buffered log line is written, or after `timeoutMs` (a pipe nobody reads
 * must not hold the exit); await it before `process.exit`. The write already handed to the
 * thread pool is waited for first, then what is left below the batch size is written
 * synchronously: written the other way round, the later lines would come first.
 */
export function flushLogger(logger: Logger, timeoutMs = 1000): Promise<void> {
  const destination = destinations.get(logger);
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      if (!destination) {
        logger.flush(done);
        return;
      }
      destination.flush(() => {
        try {
          destination.flushSync();
        } finally {
          done();
        }
      });
    } catch {
      done(); // nothing to flush, or a transport that flushes itself
    }
  });
}
