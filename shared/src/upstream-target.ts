/**
 * Upstream targets that would turn the proxy against its own network, refused unless a version opts in
 * (`allowRestrictedUpstreams` in routing-table.ts): a public request forwarded there would reach what
 * only the host itself should reach.
 *
 * `restrictedTargetProblem(origin)` judges a normalised origin (`http://host[:port]`, or any other
 * upstream scheme, as `normalizeUpstreamUrl` returns it) by its IP literal, after the URL parser's own
 * normalisation (so `http://2852039166`, `h2c://2852039166` and `http://[::ffff:169.254.169.254]` are
 * caught as 169.254.169.254):
 * - link-local 169.254.0.0/16 and fe80::/10: the EC2 instance metadata service (169.254.169.254) and
 *   the ECS task-credentials endpoint (169.254.170.2) live there;
 * - the EC2 metadata service's IPv6 addresses, fd00:ec2::/32 (fd00:ec2::254);
 * - unspecified and "this network" addresses, 0.0.0.0/8 and `::`: Linux connects them to the host itself.
 * A name is not resolved here (that would be a DNS lookup per validation, and the answer can change
 * later); the operator documentation says so. `ownListenerProblem` (the proxy's own ports on the host)
 * is applied by the proxy, the only one that knows them; `deploy` applies it with the proxy's default
 * ports (`DEFAULT_PROXY_PORTS`), so that a file-mode deploy does not write a table every proxy would
 * refuse. Neither throws.
 */
import net from 'node:net';
import { upstreamEndpoint, type UpstreamEndpoint } from './upstream-origin.js';

const RESTRICTED = new net.BlockList();
RESTRICTED.addSubnet('169.254.0.0', 16, 'ipv4');
RESTRICTED.addSubnet('0.0.0.0', 8, 'ipv4');
RESTRICTED.addSubnet('fe80::', 10, 'ipv6');
RESTRICTED.addSubnet('fd00:ec2::', 32, 'ipv6');
RESTRICTED.addAddress('::', 'ipv6');

/** The IP literal an endpoint connects to (IPv4-mapped IPv6 as its IPv4 address), undefined for a name. */
function ipOf(endpoint: UpstreamEndpoint): string | undefined {
  const host = endpoint.hostname;
  if (net.isIPv4(host)) return host;
  if (!net.isIPv6(host)) return undefined;
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped === null) return host;
  const high = parseInt(mapped[1]!, 16);
  const low = parseInt(mapped[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** What `origin` connects to; undefined for what is no upstream origin (the table's schema says why). */
function endpointOf(origin: string): UpstreamEndpoint | undefined {
  try {
    return upstreamEndpoint(origin);
  } catch {
    return undefined;
  }
}

/** Why `origin` is refused as an upstream by default, or undefined when it is not. */
export function restrictedTargetProblem(origin: string): string | undefined {
  const endpoint = endpointOf(origin);
  const ip = endpoint === undefined ? undefined : ipOf(endpoint);
  if (ip === undefined) return undefined;
  const family = net.isIPv4(ip) ? 'ipv4' : 'ipv6';
  if (!RESTRICTED.check(ip, family)) return undefined;
  if (ip.startsWith('169.254.') || ip.startsWith('fe80') || ip.startsWith('fd00:ec2')) {
    return `${origin} is a link-local or cloud metadata address (instance metadata, ECS task credentials)`;
  }
  return `${origin} is an unspecified address, which connects to the proxy's own host`;
}

/** proximation's default HTTP, HTTPS and admin ports (PROXIMATION_HTTP_PORT, _HTTPS_PORT, _ADMIN_PORT). */
export const DEFAULT_PROXY_PORTS: ReadonlySet<number> = new Set([80, 443, 9180]);

/**
 * Why `origin` is one of the proxy's own listeners (one of `ports` on a loopback, unspecified or
 * `local` address, or `localhost`), or undefined. `local`: the host's own interface addresses.
 */
export function ownListenerProblem(origin: string, ports: ReadonlySet<number>, local: ReadonlySet<string>): string | undefined {
  const endpoint = endpointOf(origin);
  if (endpoint === undefined || !ports.has(endpoint.port)) return undefined;
  const ip = ipOf(endpoint);
  const own = ip === undefined ? endpoint.hostname === 'localhost' : ip.startsWith('127.') || ip === '::1' || ip.startsWith('0.') || ip === '::' || local.has(ip);
  return own ? `${origin} is one of this proxy's own listeners (port ${endpoint.port}), which would serve them to the internet` : undefined;
}
