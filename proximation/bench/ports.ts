/**
 * Finds free TCP ports on 127.0.0.1 for servers the benchmark configures by number (nginx, Caddy).
 * Guarantees the ports were free and distinct at the time of the call; another process could still take
 * one before the server binds it, which then surfaces as that server failing to start.
 * Throws `ERR_BENCH_PORTS` (or the listen error) when no port can be bound.
 */
import { createServer, type Server } from 'node:net';
import { ProximationError } from '@proximation/shared';

function listenOnAnyPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

export async function freePorts(count: number): Promise<number[]> {
  // All held open together so that the kernel cannot hand out the same port twice.
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnAnyPort());
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new ProximationError('ERR_BENCH_PORTS', `listening on 127.0.0.1:0 gave no TCP address (${String(address)}).`);
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
