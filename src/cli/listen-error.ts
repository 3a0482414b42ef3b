import { ConfigError } from '../core/config.js';

/**
 * The one line `inlet ingest` and `inlet dev` give for a port they cannot listen on; other
 * errors pass through unchanged.
 */
export function listenError(error: unknown, port: number): unknown {
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return new ConfigError(`port ${port} is in use: stop what listens there or set PORT`);
  }
  return error;
}
