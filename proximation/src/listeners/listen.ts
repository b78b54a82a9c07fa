import type { AddressInfo, ListenOptions, Server } from 'node:net';
import { ProximationError } from '@proximation/shared';

/**
 * Starts listening; a port already taken or not allowed fails with a message that says which and why.
 * `reusePort` (Node 22.12+, 23.1+; see cluster/distribution.ts) gives this process its own SO_REUSEPORT
 * socket, even in a cluster worker, so the kernel spreads connections over every process bound there.
 */
export function listen(server: Server, port: number, host: string | undefined, reusePort = false): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = `${host ?? '*'}:${port}`;
      const hint =
        err.code === 'EADDRINUSE' ? 'another process listens there; stop it or choose another port'
        : err.code === 'EACCES' ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a higher port or grant the capability'
        : err.message;
      reject(new ProximationError('ERR_LISTEN', `cannot listen on ${where}: ${hint}`, { cause: err }));
    };
    server.once('error', onError);
    // @types/node 20 does not know `reusePort` yet.
    const options: ListenOptions & { reusePort?: boolean } = reusePort ? { port, host, reusePort: true, exclusive: true } : { port, host };
    server.listen(options, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Listens when the port is free; resolves undefined when another process listens there (EADDRINUSE).
 * Any other failure rejects as `listen` does.
 */
export async function listenIfFree(server: Server, port: number, host: string | undefined): Promise<AddressInfo | undefined> {
  try {
    return await listen(server, port, host);
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'EADDRINUSE') return undefined;
    throw err;
  }
}
