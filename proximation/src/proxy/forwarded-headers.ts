/**
 * What crosses the proxy in headers, both ways.
 *
 * Towards the upstream: hop-by-hop headers (RFC 9110 7.6.1, plus every name listed in `Connection`) and
 * HTTP/2 pseudo-headers are dropped, except that a client accepting trailers gets `TE: trailers` (with
 * its `Connection: TE` option, RFC 9110 10.1.4) sent on, since the proxy relays them (trailers.ts);
 * `Host` is the authority the request was routed by (request-target.ts: the Host line, `:authority` on
 * HTTP/2, the target's own authority for an absolute-form target), in the place of the client's Host
 * line; `Cookie` fields (HTTP/2 sends each cookie as its own field) are joined into one with `; `, as
 * HTTP/1.1 carries them (RFC 9113 8.2.3); and `X-Forwarded-For/-Proto/-Host` are set. A client can
 * claim anything in those headers, so incoming values (and `Forwarded`) are kept only when the peer is
 * a trusted proxy (e.g. the load balancer's subnet); then the peer is appended to X-Forwarded-For and
 * the client address is the rightmost
 * untrusted one in the chain. The other headers apps read a client's identity from (`X-Forwarded-Port`,
 * `X-Forwarded-Prefix`, `X-Client-IP`, `True-Client-IP`, `CF-Connecting-IP`) are likewise dropped
 * unless the peer is trusted. `X-Real-IP` is always replaced by the client address worked out here: a
 * load balancer such as an ALB passes a client's own X-Real-IP through untouched, so not even a trusted
 * peer's value can be believed. Spellings with `_` for `-` of all these are dropped whatever the peer:
 * CGI-style servers (WSGI, PHP-FPM, Rack) map both to the same variable, and no proxy sends them.
 *
 * Towards the client: hop-by-hop headers of the upstream's response are dropped; the server writing the
 * response adds its own framing.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { TrustedProxies } from '../config.js';
import { PREVIEW_TOKEN_HEADER } from './preview-access.js';

const HOP_BY_HOP = new Set([
  // The admin token presented on a preview host (preview-access.ts) is for the proxy alone.
  PREVIEW_TOKEN_HEADER,
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // Node answers `Expect: 100-continue` to the client itself, so the body follows at once: an upstream
  // told to expect would answer 100 for nothing.
  'expect',
]);

/** Headers that say who the client is or how it connected: only a trusted proxy may send them on. */
const FORWARDING = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
]);
const REAL_IP = 'x-real-ip';

/** A name an app could read as one of FORWARDING or X-Real-IP that must not come from the client as written. */
function spoofedSpelling(lower: string): boolean {
  if (lower === REAL_IP) return true;
  if (!lower.includes('_')) return false;
  const dashed = lower.replaceAll('_', '-');
  return dashed === REAL_IP || FORWARDING.has(dashed);
}

/** Whether a (lower-case) field name is hop-by-hop: never passed on as it is, in either direction. */
export function isHopByHop(lower: string): boolean {
  return HOP_BY_HOP.has(lower);
}

/** Whether a TE field value (`trailers`, `gzip, trailers`...) says the client accepts trailers. */
function acceptsTrailers(te: string): boolean {
  for (const item of te.split(',')) {
    const semicolon = item.indexOf(';');
    const coding = (semicolon === -1 ? item : item.slice(0, semicolon)).trim();
    if (coding.length === 8 && coding.toLowerCase() === 'trailers') return true;
  }
  return false;
}

function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value === '') return undefined;
  const tokens = new Set<string>();
  for (const t of value.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') tokens.add(name);
  }
  return tokens.size === 0 ? undefined : tokens;
}

export interface ForwardedRequest {
  /** Flat [name, value, name, value...] list for the upstream request. */
  headers: string[];
  /** The client's address as far as it can be trusted, for logs. */
  client: string;
}

/**
 * @param rawHeaders the request's raw header list (Node's `req.rawHeaders`, pseudo-headers included on HTTP/2)
 * @param authority the authority the request was routed by (request-target.ts), sent as its Host
 * @param peer the address of the TCP peer
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  authority: string,
  peer: string,
  scheme: 'http' | 'https',
  trusted: TrustedProxies,
): ForwardedRequest {
  const keepForwarding = trusted.has(peer);
  let connection: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      connection = connection === undefined ? rawHeaders[i + 1] : `${connection},${rawHeaders[i + 1]}`;
    }
  }
  const listed = connectionTokens(connection);
  const out: string[] = [];
  let hasHost = false;
  /** Where the first Cookie field's value sits in `out`, the others joined to it. */
  let cookieAt = -1;
  let trailers = false;
  let xff: string | undefined;
  let proto: string | undefined;
  let forwardedHost: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (HOP_BY_HOP.has(lower) || listed?.has(lower) || spoofedSpelling(lower)) {
      if (lower === 'te' && acceptsTrailers(value)) trailers = true;
      continue;
    }
    if (FORWARDING.has(lower)) {
      if (!keepForwarding) continue;
      if (lower === 'x-forwarded-for') {
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      if (lower === 'x-forwarded-proto') {
        proto ??= value;
        continue;
      }
      if (lower === 'x-forwarded-host') {
        forwardedHost ??= value;
        continue;
      }
    }
    if (lower === 'host') {
      if (hasHost) continue;
      hasHost = true;
      out.push(name, authority);
      continue;
    }
    if (lower === 'cookie') {
      if (cookieAt !== -1) {
        out[cookieAt] = `${out[cookieAt]}; ${value}`;
        continue;
      }
      cookieAt = out.length + 1;
    }
    out.push(name, value);
  }
  if (!hasHost) out.push('host', authority);
  if (trailers) out.push('te', 'trailers', 'connection', 'te');
  const peerAddress = plainAddress(peer);
  const client = xff === undefined ? peerAddress : clientFromChain(xff, trusted) ?? peerAddress;
  out.push(
    'x-forwarded-for', xff === undefined ? peerAddress : `${xff}, ${peerAddress}`,
    'x-forwarded-proto', proto ?? scheme,
    'x-forwarded-host', forwardedHost ?? authority,
    REAL_IP, client,
  );
  return { headers: out, client };
}

/**
 * The client's address as far as it can be trusted, the same one `upstreamRequestHeaders` reports: the
 * peer, or behind a trusted proxy the rightmost untrusted hop of its X-Forwarded-For.
 */
export function clientAddress(xff: string | string[] | undefined, peer: string, trusted: TrustedProxies): string {
  const chain = Array.isArray(xff) ? xff.join(', ') : xff;
  const peerAddress = plainAddress(peer);
  if (chain === undefined || !trusted.has(peer)) return peerAddress;
  return clientFromChain(`${chain}, ${peerAddress}`, trusted) ?? peerAddress;
}

/** The rightmost address in an X-Forwarded-For chain that is not a trusted proxy. */
function clientFromChain(chain: string, trusted: TrustedProxies): string | undefined {
  const hops = chain.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    if (hop !== '' && !trusted.has(hop)) return hop;
  }
  return hops[0]?.trim();
}

/** An IPv4 peer of a dual-stack socket as plain a.b.c.d (Node reports it as ::ffff:a.b.c.d): one form in headers and logs. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** The upstream's response headers minus hop-by-hop ones, ready for writeHead on HTTP/1.1 or HTTP/2. */
export function clientResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionTokens(typeof headers.connection === 'string' ? headers.connection : undefined);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}
