import { type Logger, type LoggerOptions, pino } from 'pino';

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
   * Write through pino's asynchronous destination (buffered, flushed at exit), which keeps
   * logging off the request's critical path. @defaultValue `true`
   */
  async?: boolean;
  /** Fields on every line, e.g. `{ service: 'ingest' }`. */
  base?: Record<string, unknown>;
}

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
  const destination = pino.destination({ dest: 1, sync: settings.async === false, minLength: 0 });
  const logger = pino(options, destination);
  // An asynchronous destination must be flushed before the process exits, or lines are lost.
  process.once('beforeExit', () => destination.flushSync());
  return logger;
}

/** Flushes buffered log lines; call before `process.exit`. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // Nothing buffered, or a transport that flushes itself.
  }
}
