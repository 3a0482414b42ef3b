/**
 * Thrown for configuration a process cannot start with. Its message is one line that names the
 * variable and says what to do; the CLI prints it and exits non-zero, without a stack trace.
 * A module of its own so that light commands (`inlet healthcheck`) need not load the schema.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
