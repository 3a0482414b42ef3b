/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0; a second signal exits at once (1).
 * An error in `stop` exits 1 after printing one line.
 */
export function onShutdownSignal(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`inlet: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop(signal).then(
      () => process.exit(0),
      (error: Error) => {
        process.stderr.write(`inlet: shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}
