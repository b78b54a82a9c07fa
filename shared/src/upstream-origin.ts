/**
 * The upstream URL schemes and what each says about the connection to the upstream:
 *
 * | scheme   | protocol | transport                         | default port |
 * |----------|----------|-----------------------------------|--------------|
 * | `http:`  | HTTP/1.1 | TCP                               | 80           |
 * | `https:` | HTTP/1.1 | TLS, ALPN `http/1.1`              | 443          |
 * | `h2c:`   | HTTP/2   | TCP, prior knowledge (RFC 9113 3.3) | 80         |
 * | `h2:`    | HTTP/2   | TLS, ALPN `h2` required           | 443          |
 *
 * The protocol is the operator's choice, written in the table, not negotiated: an `https:` upstream that
 * also speaks HTTP/2 stays on HTTP/1.1, so upgrading proximation changes no upstream's protocol under it.
 *
 * `h2c:` and `h2:` are not WHATWG "special" schemes, so the URL parser would keep their host opaque (no
 * lower-casing, no punycode, `2852039166` left as a name that the resolver later reads as an IPv4
 * address). `specialFormOf` parses them as `http:` / `https:` instead, so every scheme's host gets the
 * same normalisation and the restricted-target checks (upstream-target.ts) see the address the
 * connection will use. `upstreamEndpoint` reads a normalised origin (as `normalizeUpstreamUrl` returns
 * it); neither throws for such an origin, `upstreamEndpoint` throws the URL parser's TypeError otherwise.
 */

export type UpstreamScheme = 'http:' | 'https:' | 'h2c:' | 'h2:';

interface SchemeRule {
  /** The special scheme whose parsing and default port it shares. */
  readonly parsedAs: 'http:' | 'https:';
  readonly http2: boolean;
}

const SCHEMES: Readonly<Record<UpstreamScheme, SchemeRule>> = {
  'http:': { parsedAs: 'http:', http2: false },
  'https:': { parsedAs: 'https:', http2: false },
  'h2c:': { parsedAs: 'http:', http2: true },
  'h2:': { parsedAs: 'https:', http2: true },
};

/** How the upstream schemes are named in messages. */
export const UPSTREAM_SCHEME_NAMES = 'http, https, h2c or h2';

export function isUpstreamScheme(protocol: string): protocol is UpstreamScheme {
  return Object.hasOwn(SCHEMES, protocol);
}

/**
 * `url` (an upstream URL of any scheme) parsed as its special scheme would be, with its own scheme
 * alongside; undefined for a scheme that is not an upstream scheme. Throws the URL parser's TypeError.
 */
export function specialFormOf(input: string): { scheme: UpstreamScheme; url: URL } | undefined {
  const colon = input.indexOf(':');
  const scheme = `${input.slice(0, colon).toLowerCase()}:`;
  if (!isUpstreamScheme(scheme)) return undefined;
  return { scheme, url: new URL(`${SCHEMES[scheme].parsedAs}${input.slice(colon + 1)}`) };
}

/** The normalised origin of `url` (its special form) under `scheme`. */
export function originOf(scheme: UpstreamScheme, url: URL): string {
  return `${scheme}//${url.host}`;
}

export interface UpstreamEndpoint {
  readonly scheme: UpstreamScheme;
  readonly http2: boolean;
  readonly tls: boolean;
  /** Name or IP address to connect to, IPv6 without brackets. */
  readonly hostname: string;
  readonly port: number;
  /** `host[:port]` as a Host header or `:authority` names it (the port only when not the default). */
  readonly authority: string;
}

/** What a normalised upstream origin connects to and how. */
export function upstreamEndpoint(origin: string): UpstreamEndpoint {
  const special = specialFormOf(origin);
  if (special === undefined) throw new TypeError(`${origin} is not an upstream origin (${UPSTREAM_SCHEME_NAMES})`);
  const { scheme, url } = special;
  const rule = SCHEMES[scheme];
  const tls = rule.parsedAs === 'https:';
  return {
    scheme,
    http2: rule.http2,
    tls,
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? (tls ? 443 : 80) : Number(url.port),
    authority: url.host,
  };
}
