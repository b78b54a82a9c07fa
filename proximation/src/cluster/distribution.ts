/**
 * How new connections reach the workers. Where Node supports `reusePort` (22.12+ on 22, 23.1+; the
 * image's Node 26), every worker binds its own SO_REUSEPORT socket and the kernel spreads connections
 * over them: nothing passes through the primary. Elsewhere (Node 20, which ignores the option
 * silently) `node:cluster` distributes: the primary accepts each connection and hands it to a worker in
 * turn (round-robin), a cost per connection, not per request.
 *
 * Port 0 (tests) keeps `node:cluster`'s way even where reusePort exists: each SO_REUSEPORT socket
 * would get a port of its own.
 */
export type Distribution = 'reuseport' | 'cluster';

export function supportsReusePort(nodeVersion: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = nodeVersion.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export function distributionFor(ports: { httpPort: number; httpsPort: number }, nodeVersion?: string): Distribution {
  return supportsReusePort(nodeVersion) && ports.httpPort !== 0 && ports.httpsPort !== 0 ? 'reuseport' : 'cluster';
}
