import { once } from 'node:events';
import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on 127.0.0.1, for a private redis-server (`inlet dev`,
 * the tests, the benchmark). Another process may take it before the caller binds it: callers
 * that start a server on it fail loudly rather than share a port.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((done) => server.close(done));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}
