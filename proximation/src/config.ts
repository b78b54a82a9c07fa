/**
 * The one validated configuration of a proximation process.
 *
 * Every setting has one definition below, which yields its environment variable (`PROXIMATION_*`, for
 * ECS task definitions), its command-line flag, its default and its help line, so the three can never
 * drift apart. `loadConfig` reads flags first, then the environment, then the default. A malformed flag
 * value is a usage error (`ERR_USAGE`, exit 2); a malformed variable, or settings that contradict each
 * other, are `ERR_CONFIG_INVALID` (exit 1). Each message names the flag or variable as given, the
 * value and what is accepted; a contradiction names both settings.
 */
import net from 'node:net';
import path from 'node:path';
import { ProximationError, checkRedisKeyPrefix, formatDuration, isProximationError, networkMatcher, parseDuration, parseNetwork, parseStorageSetting, usageError, type StorageSetting } from '@proximation/shared';
import { parseAdminToken, readAdminTokenFile } from './admin/admin-auth.js';
import { parseServer, type DnsServer } from './certs/dns01/dns-client.js';
import { availableCpus } from './cluster/cpus.js';

export type Issuer = 'local' | 'acme';
export type LogFormat = 'json' | 'pretty';
/** Whether GET /metrics needs the admin token: `auto` when the admin listener is not on loopback and a token is set. */
export type MetricsAuth = 'auto' | 'on' | 'off';
export const ACME_KEY_TYPES = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type AcmeKeyType = (typeof ACME_KEY_TYPES)[number];
export const ACME_CHALLENGES = ['http-01', 'tls-alpn-01', 'dns-01'] as const;
export type AcmeChallengeType = (typeof ACME_CHALLENGES)[number];
export const DNS_PROVIDERS = ['rfc2136', 'route53', 'hook'] as const;
export type DnsProviderType = (typeof DNS_PROVIDERS)[number];

export const LETS_ENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

export interface Config {
  httpPort: number;
  httpsPort: number;
  /** The HTTPS port clients see (behind a port mapping); used in redirects. */
  publicHttpsPort: number;
  adminPort: number;
  listenAddress: string | undefined;
  adminAddress: string;
  /** The admin API's bearer token (from PROXIMATION_ADMIN_TOKEN, or read from the _FILE); none: the API is off. */
  adminToken: string | undefined;
  adminTokenFile: string | undefined;
  letsencryptDir: string;
  routesPath: string;
  /**
   * Where the shared state lives (PROXIMATION_STORAGE): the letsencrypt directory by default, another
   * directory (which then is the letsencrypt directory), or Redis, with PROXIMATION_STORAGE_PREFIX.
   */
  storage: StorageSetting;
  storagePrefix: string | undefined;
  /**
   * On Redis, the local directory certificates are also written to in certbot's layout: the letsencrypt
   * directory when it was set; undefined otherwise (and always on a directory, which is that layout).
   */
  certbotCopyDir: string | undefined;
  issuer: Issuer;
  /** The ACME CA's directory URL, exactly as configured (certbot keys accounts and lineages by this string). */
  acmeDirectory: string;
  acmeEmail: string | undefined;
  /** A PEM bundle trusted, in addition to Node's roots, for the ACME server's own HTTPS. */
  acmeCaCerts: string | undefined;
  acmeProfile: string | undefined;
  acmeEabKid: string | undefined;
  acmeEabHmacKey: string | undefined;
  acmeKeyType: AcmeKeyType;
  acmeChallenge: AcmeChallengeType;
  /** Who answers DNS-01 challenges (globally, or for sites that ask for dns-01). */
  dnsProvider: DnsProviderType | undefined;
  dnsRfc2136Credentials: string | undefined;
  dnsHookAuth: string | undefined;
  dnsHookCleanup: string | undefined;
  dnsHookTimeoutMs: number;
  dnsPropagationTimeoutMs: number;
  /** Recursive resolvers for the propagation check; undefined: the system's (/etc/resolv.conf). */
  dnsResolvers: DnsServer[] | undefined;
  dnsAuthoritativePort: number;
  trustedProxies: TrustedProxies;
  logLevel: string;
  logFormat: LogFormat | undefined;
  accessLog: boolean;
  routesPollMs: number;
  certPollMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  upstreamConnectTimeoutMs: number;
  upstreamTimeoutMs: number;
  drainTimeoutMs: number;
  maxHeaderSize: number;
  /** Largest response head (and trailer section) an upstream may send, in bytes; larger is a 502. */
  maxResponseHeaderSize: number;
  maxConnections: number;
  tlsHandshakeTimeoutMs: number;
  maxConnectionsPerAddress: number;
  maxRequestRatePerAddress: number;
  maxUpstreamRequestsPerConnection: number;
  maxUpstreamRequestsPerAddress: number;
  /** Response bytes buffered for one client connection, and one client address, before their upstreams are read no further. */
  maxBufferedBytesPerConnection: number;
  maxBufferedBytesPerAddress: number;
  metricsAuth: MetricsAuth;
  healthIntervalMs: number;
  healthPath: string;
  healthTimeoutMs: number;
  websocketDrainMs: number;
  /** Processes serving :80 and :443; 1 is a single process (no primary, no workers). */
  workers: number;
}

/** Trusted peers whose X-Forwarded-* headers are kept: addresses and CIDR blocks, IPv4 and IPv6. */
export interface TrustedProxies {
  readonly list: readonly string[];
  has(address: string): boolean;
}

export function parseTrustedProxies(text: string, field: string): TrustedProxies {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const networks = list.map((entry) => parseNetwork(entry) ?? invalidNetwork(field, entry));
  return { list, has: networkMatcher(networks) };
}

function invalidNetwork(field: string, entry: string): never {
  throw invalid(field, entry, 'an IP address or CIDR block such as 10.0.0.0/16 or fd00::/8, comma-separated');
}

interface Setting<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  help: string;
  /** The value used when neither flag nor variable is set; `undefined` when derived or unset. */
  default: string | undefined;
  /** How --help shows the default when it is not a plain value. */
  defaultText?: string;
  parse(text: string, field: string): Config[K];
}

function setting<K extends keyof Config>(s: Setting<K>): Setting<K> {
  return s;
}

function invalid(field: string, value: string, expected: string): ProximationError {
  return new ProximationError('ERR_CONFIG_INVALID', `${field}=${JSON.stringify(value)} is not valid: expected ${expected}.`);
}

function port(text: string, field: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw invalid(field, text, 'a port number from 0 to 65535');
  return n;
}

function positiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1) throw invalid(field, text, 'a whole number of at least 1');
  return n;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
/** Below this a browser's few dozen parallel requests (64 KiB of credit each, see client-buffers.ts) would wait on each other. */
const MIN_BUFFER_BYTES = 1024 ** 2;
/**
 * A response head is buffered whole per upstream connection until it ends: the lower bound still holds a
 * status line and a few headers, the upper one keeps a thousand connections' heads under 1 GiB.
 */
const MIN_RESPONSE_HEAD = 1024;
const MAX_RESPONSE_HEAD = 1024 * 1024;

/**
 * A byte count, plain or with a binary unit (`8MiB`), from `min` to `max`; `range` says both (and an
 * example) in the error.
 */
function byteSize(min: number, max: number, range: string): (text: string, field: string) => number {
  return (text, field) => {
    const match = /^(\d+)(KiB|MiB|GiB)?$/.exec(text);
    const bytes = match === null ? NaN : Number(match[1]) * SIZE_UNITS[match[2] ?? '']!;
    if (!(bytes >= min && bytes <= max) || !Number.isSafeInteger(bytes)) throw invalid(field, text, `a size ${range}, or a number of bytes`);
    return bytes;
  };
}

/** At most four workers per CPU: more only adds memory and context switches, and is surely a typo. */
export const MAX_WORKERS_PER_CPU = 4;

function workerCount(text: string, field: string): number {
  const cpus = availableCpus();
  const max = cpus * MAX_WORKERS_PER_CPU;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) {
    throw invalid(field, text, `a whole number of worker processes from 1 to ${max} (${MAX_WORKERS_PER_CPU} per CPU; this process may use ${cpus})`);
  }
  return n;
}

function duration(text: string, field: string): number {
  return parseDuration(text, field);
}

function address(text: string, field: string): string {
  if (!net.isIP(text)) throw invalid(field, text, 'an IP address such as 127.0.0.1, 0.0.0.0 or ::');
  return text;
}

function oneOf<T extends string>(values: readonly T[]) {
  return (text: string, field: string): T => {
    if (!(values as readonly string[]).includes(text)) throw invalid(field, text, `one of ${values.join(', ')}`);
    return text as T;
  };
}

function bool(text: string, field: string): boolean {
  if (['on', 'true', '1', 'yes'].includes(text)) return true;
  if (['off', 'false', '0', 'no'].includes(text)) return false;
  throw invalid(field, text, 'on or off');
}

/**
 * An https URL whose path certbot can turn into `accounts/<host[:port]><path>/`: no user info, and no
 * `.`/`..` segment that would leave that directory.
 */
function acmeDirectoryUrl(text: string, field: string): string {
  const expected = `an https URL of an ACME directory, such as ${LETS_ENCRYPT_PRODUCTION}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(field, text, expected);
  }
  const rawPath = /^https:\/\/[^/?#]*([^?#]*)/i.exec(text)?.[1] ?? '';
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '' || rawPath.split('/').some((s) => s === '.' || s === '..')) {
    throw invalid(field, text, expected);
  }
  return text;
}

function email(text: string, field: string): string {
  if (!/^[^@\s:,]+@[^@\s:,]+\.[^@\s:,]+$/.test(text)) throw invalid(field, text, 'an e-mail address such as ops@example.com');
  return text;
}

function token(text: string, field: string): string {
  if (!/^[A-Za-z0-9._~-]{1,128}$/.test(text)) throw invalid(field, text, 'a name of letters, digits, ".", "_", "~" or "-"');
  return text;
}

function base64url(text: string, field: string): string {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(text)) throw invalid(field, text, 'the base64url-encoded HMAC key the CA gave you');
  return text;
}

function requestPath(text: string, field: string): string {
  if (!/^\/[\x21-\x7e]*$/.test(text)) throw invalid(field, text, 'a request path starting with / (printable ASCII, no spaces)');
  return text;
}

function dnsServers(text: string, field: string): DnsServer[] {
  const servers = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  return servers.map((entry) => {
    const server = parseServer(entry, 53);
    if (server === undefined || net.isIP(server.host) === 0) throw invalid(field, entry, 'IP addresses with optional ports, comma-separated, such as 10.0.0.2,[fd00::2]:53');
    return server;
  });
}

function command(text: string, field: string): string {
  if (text.trim() === '') throw invalid(field, text, 'a shell command');
  return text;
}

function absolutePath(text: string, field: string): string {
  if (text === '') throw invalid(field, text, 'a directory or file path');
  return path.resolve(text);
}

export const SETTINGS = [
  setting({ key: 'httpPort', flag: 'http-port', env: 'PROXIMATION_HTTP_PORT', default: '80', parse: port,
    help: 'HTTP listener: ACME HTTP-01 challenges, everything else redirected to HTTPS' }),
  setting({ key: 'httpsPort', flag: 'https-port', env: 'PROXIMATION_HTTPS_PORT', default: '443', parse: port,
    help: 'HTTPS listener (HTTP/2 and HTTP/1.1)' }),
  setting({ key: 'publicHttpsPort', flag: 'public-https-port', env: 'PROXIMATION_PUBLIC_HTTPS_PORT', default: undefined, defaultText: 'the HTTPS port', parse: port,
    help: 'HTTPS port clients connect to, used in redirects' }),
  setting({ key: 'adminPort', flag: 'admin-port', env: 'PROXIMATION_ADMIN_PORT', default: '9180', parse: port,
    help: 'admin listener: /healthz and the admin API' }),
  setting({ key: 'listenAddress', flag: 'listen-address', env: 'PROXIMATION_LISTEN_ADDRESS', default: undefined, defaultText: 'all interfaces', parse: address,
    help: 'address of the HTTP and HTTPS listeners' }),
  setting({ key: 'adminAddress', flag: 'admin-address', env: 'PROXIMATION_ADMIN_ADDRESS', default: '127.0.0.1', parse: address,
    help: 'address of the admin listener (keep it private)' }),
  setting({ key: 'adminToken', flag: 'admin-token', env: 'PROXIMATION_ADMIN_TOKEN', default: undefined, defaultText: 'none: the admin API is off', parse: parseAdminToken,
    help: 'bearer token of the admin API (/api/routes), 16 to 4096 printable ASCII characters without spaces; prefer the _FILE setting, flags show in ps' }),
  setting({ key: 'adminTokenFile', flag: 'admin-token-file', env: 'PROXIMATION_ADMIN_TOKEN_FILE', default: undefined, defaultText: 'none', parse: absolutePath,
    help: 'file holding the admin token, read at start (instead of PROXIMATION_ADMIN_TOKEN)' }),
  setting({ key: 'letsencryptDir', flag: 'letsencrypt-dir', env: 'PROXIMATION_LETSENCRYPT_DIR', default: '/etc/letsencrypt', parse: absolutePath,
    help: "certificates in certbot's layout, plus proximation's own state under proximation/" }),
  setting({ key: 'routesPath', flag: 'routes', env: 'PROXIMATION_ROUTES', default: undefined, defaultText: '<letsencrypt dir>/proximation/routes.json', parse: absolutePath,
    help: 'the routing table' }),
  setting({ key: 'storage', flag: 'storage', env: 'PROXIMATION_STORAGE', default: undefined, defaultText: 'the letsencrypt directory',
    parse: (text, field) => parseStorageSetting(text, field),
    help: 'where the shared state lives: a directory, or redis://[user:password@]host:port[/db] (rediss:// for TLS); on Redis a set letsencrypt directory gets a copy of the certificates for certbot' }),
  setting({ key: 'storagePrefix', flag: 'storage-prefix', env: 'PROXIMATION_STORAGE_PREFIX', default: undefined, defaultText: 'proximation:', parse: (text, field) => checkRedisKeyPrefix(text, field),
    help: 'Redis key prefix, so several fleets share one Redis: letters, digits and ":_.-"' }),
  setting({ key: 'issuer', flag: 'issuer', env: 'PROXIMATION_ISSUER', default: 'local', parse: oneOf(['local', 'acme'] as const),
    help: 'who issues certificates: local (an embedded CA) or acme' }),
  setting({ key: 'acmeDirectory', flag: 'acme-directory', env: 'PROXIMATION_ACME_DIRECTORY', default: LETS_ENCRYPT_PRODUCTION, parse: acmeDirectoryUrl,
    help: `ACME directory URL (issuer acme); for trials use Let's Encrypt staging, ${LETS_ENCRYPT_STAGING}` }),
  setting({ key: 'acmeEmail', flag: 'acme-email', env: 'PROXIMATION_ACME_EMAIL', default: undefined, defaultText: 'none', parse: email,
    help: 'contact address registered with the ACME account' }),
  setting({ key: 'acmeCaCerts', flag: 'acme-ca-certs', env: 'PROXIMATION_ACME_CA_CERTS', default: undefined, defaultText: "Node's roots only", parse: absolutePath,
    help: "PEM file of extra CAs to trust for the ACME server's own HTTPS (a private CA, Pebble)" }),
  setting({ key: 'acmeProfile', flag: 'acme-profile', env: 'PROXIMATION_ACME_PROFILE', default: undefined, defaultText: "the CA's default", parse: token,
    help: "certificate profile to order (Let's Encrypt: classic, tlsserver, shortlived)" }),
  setting({ key: 'acmeEabKid', flag: 'acme-eab-kid', env: 'PROXIMATION_ACME_EAB_KID', default: undefined, defaultText: 'none', parse: token,
    help: 'external account binding key id, for CAs that require one' }),
  setting({ key: 'acmeEabHmacKey', flag: 'acme-eab-hmac-key', env: 'PROXIMATION_ACME_EAB_HMAC_KEY', default: undefined, defaultText: 'none', parse: base64url,
    help: 'external account binding HMAC key (base64url); prefer the variable, flags show in ps' }),
  setting({ key: 'acmeKeyType', flag: 'acme-key-type', env: 'PROXIMATION_ACME_KEY_TYPE', default: 'ecdsa-p256', parse: oneOf(ACME_KEY_TYPES),
    help: `certificate key type: ${ACME_KEY_TYPES.join(', ')}` }),
  setting({ key: 'acmeChallenge', flag: 'acme-challenge', env: 'PROXIMATION_ACME_CHALLENGE', default: 'http-01', parse: oneOf(ACME_CHALLENGES),
    help: 'how the CA validates names: http-01 (port 80), tls-alpn-01 (port 443) or dns-01 (a TXT record; needs PROXIMATION_DNS_PROVIDER); a site may choose its own' }),
  setting({ key: 'dnsProvider', flag: 'dns-provider', env: 'PROXIMATION_DNS_PROVIDER', default: undefined, defaultText: 'none', parse: oneOf(DNS_PROVIDERS),
    help: `who puts DNS-01 TXT records up: ${DNS_PROVIDERS.join(', ')}` }),
  setting({ key: 'dnsRfc2136Credentials', flag: 'dns-rfc2136-credentials', env: 'PROXIMATION_DNS_RFC2136_CREDENTIALS', default: undefined, defaultText: 'none', parse: absolutePath,
    help: "certbot's dns-rfc2136 credentials file: server, TSIG key name, secret, algorithm (provider rfc2136)" }),
  setting({ key: 'dnsHookAuth', flag: 'dns-hook-auth', env: 'PROXIMATION_DNS_HOOK_AUTH', default: undefined, defaultText: 'none', parse: command,
    help: "command that adds the TXT record, run as certbot's --manual-auth-hook (provider hook)" }),
  setting({ key: 'dnsHookCleanup', flag: 'dns-hook-cleanup', env: 'PROXIMATION_DNS_HOOK_CLEANUP', default: undefined, defaultText: 'none', parse: command,
    help: "command that removes it, run as certbot's --manual-cleanup-hook (provider hook)" }),
  setting({ key: 'dnsHookTimeoutMs', flag: 'dns-hook-timeout', env: 'PROXIMATION_DNS_HOOK_TIMEOUT', default: '2m', parse: duration,
    help: 'a DNS hook running longer is killed and the order fails' }),
  setting({ key: 'dnsPropagationTimeoutMs', flag: 'dns-propagation-timeout', env: 'PROXIMATION_DNS_PROPAGATION_TIMEOUT', default: '2m', parse: duration,
    help: "how long to wait for every authoritative server of the name to answer a DNS-01 record before the order fails" }),
  setting({ key: 'dnsResolvers', flag: 'dns-resolvers', env: 'PROXIMATION_DNS_RESOLVERS', default: undefined, defaultText: "the system's", parse: dnsServers,
    help: 'resolvers that find a DNS-01 record\'s zone and name servers (and follow CNAMEs), such as 10.0.0.2,10.0.0.3:5353' }),
  setting({ key: 'dnsAuthoritativePort', flag: 'dns-authoritative-port', env: 'PROXIMATION_DNS_AUTHORITATIVE_PORT', default: '53', parse: port,
    help: 'port on which the authoritative servers are asked whether a DNS-01 record is there' }),
  setting({ key: 'trustedProxies', flag: 'trusted-proxies', env: 'PROXIMATION_TRUSTED_PROXIES', default: '', defaultText: 'none', parse: parseTrustedProxies,
    help: 'comma-separated addresses or CIDR blocks whose X-Forwarded-* headers are kept' }),
  setting({ key: 'logLevel', flag: 'log-level', env: 'PROXIMATION_LOG_LEVEL', default: 'info',
    parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const), help: 'log level' }),
  setting({ key: 'logFormat', flag: 'log-format', env: 'PROXIMATION_LOG_FORMAT', default: undefined, defaultText: 'pretty on a terminal, else json',
    parse: oneOf(['json', 'pretty'] as const), help: 'log format' }),
  setting({ key: 'accessLog', flag: 'access-log', env: 'PROXIMATION_ACCESS_LOG', default: 'on', parse: bool,
    help: 'one log line per request: on or off' }),
  setting({ key: 'routesPollMs', flag: 'routes-poll', env: 'PROXIMATION_ROUTES_POLL', default: '1s', parse: duration,
    help: 'how often the routing table is re-read (NFS delivers no change events)' }),
  setting({ key: 'certPollMs', flag: 'cert-poll', env: 'PROXIMATION_CERT_POLL', default: '10s', parse: duration,
    help: 'how often certificates written by other instances are looked for' }),
  setting({ key: 'headersTimeoutMs', flag: 'headers-timeout', env: 'PROXIMATION_HEADERS_TIMEOUT', default: '10s', parse: duration,
    help: 'time a client has to send request headers' }),
  setting({ key: 'requestTimeoutMs', flag: 'request-timeout', env: 'PROXIMATION_REQUEST_TIMEOUT', default: '5m', parse: duration,
    help: 'time a client has to send a whole request, body included (HTTP/1.1: 408; HTTP/2: the stream is reset)' }),
  setting({ key: 'idleTimeoutMs', flag: 'idle-timeout', env: 'PROXIMATION_IDLE_TIMEOUT', default: '1m', parse: duration,
    help: "a client connection on which nothing moves while it is the client's turn (between requests, a response or upload it stalls) is closed after this; one waiting on the upstream is not idle" }),
  setting({ key: 'upstreamConnectTimeoutMs', flag: 'upstream-connect-timeout', env: 'PROXIMATION_UPSTREAM_CONNECT_TIMEOUT', default: '5s',
    parse: duration, help: 'connecting to an upstream; then 504' }),
  setting({ key: 'upstreamTimeoutMs', flag: 'upstream-timeout', env: 'PROXIMATION_UPSTREAM_TIMEOUT', default: '60s', parse: duration,
    help: 'waiting for response headers, or between body chunks, from an upstream; then 504' }),
  setting({ key: 'drainTimeoutMs', flag: 'drain-timeout', env: 'PROXIMATION_DRAIN_TIMEOUT', default: '20s', parse: duration,
    help: 'on SIGTERM, time in-flight requests get to finish' }),
  setting({ key: 'maxHeaderSize', flag: 'max-header-size', env: 'PROXIMATION_MAX_HEADER_SIZE', default: '16384', parse: positiveInt,
    help: 'largest request header block in bytes; larger gets 431' }),
  setting({ key: 'maxResponseHeaderSize', flag: 'max-response-header-size', env: 'PROXIMATION_MAX_RESPONSE_HEADER_SIZE', default: '16384',
    parse: byteSize(MIN_RESPONSE_HEAD, MAX_RESPONSE_HEAD, 'from 1KiB to 1MiB (1024 to 1048576 bytes), such as 32KiB'),
    help: `largest response head (status line and headers, HTTP/2: the header list; also the trailers) an upstream may send, ${MIN_RESPONSE_HEAD} to ${MAX_RESPONSE_HEAD} bytes; larger gets the client a 502` }),
  setting({ key: 'maxConnections', flag: 'max-connections', env: 'PROXIMATION_MAX_CONNECTIONS', default: '10000', parse: positiveInt,
    help: 'client connections per listener; more are refused' }),
  setting({ key: 'tlsHandshakeTimeoutMs', flag: 'tls-handshake-timeout', env: 'PROXIMATION_TLS_HANDSHAKE_TIMEOUT', default: '10s', parse: duration,
    help: 'time a client has to finish the TLS handshake on the HTTPS listener; then the connection is closed' }),
  setting({ key: 'maxConnectionsPerAddress', flag: 'max-connections-per-address', env: 'PROXIMATION_MAX_CONNECTIONS_PER_ADDRESS', default: '256', parse: positiveInt,
    help: 'open connections from one client address per listener (trusted proxies exempt); more are closed at once' }),
  setting({ key: 'maxRequestRatePerAddress', flag: 'max-request-rate-per-address', env: 'PROXIMATION_MAX_REQUEST_RATE_PER_ADDRESS', default: '500', parse: positiveInt,
    help: 'new requests (HTTP/2 streams included) per second from one client address, bursts of twice that; more get 429' }),
  setting({ key: 'maxUpstreamRequestsPerConnection', flag: 'max-upstream-requests-per-connection', env: 'PROXIMATION_MAX_UPSTREAM_REQUESTS_PER_CONNECTION', default: '100', parse: positiveInt,
    help: 'requests of one client connection in flight to upstreams at once; more wait for one to finish' }),
  setting({ key: 'maxUpstreamRequestsPerAddress', flag: 'max-upstream-requests-per-address', env: 'PROXIMATION_MAX_UPSTREAM_REQUESTS_PER_ADDRESS', default: '512', parse: positiveInt,
    help: 'requests of one client address in flight to upstreams at once; more wait for one to finish' }),
  setting({ key: 'maxBufferedBytesPerConnection', flag: 'max-buffered-bytes-per-connection', env: 'PROXIMATION_MAX_BUFFERED_BYTES_PER_CONNECTION', default: '8MiB', parse: byteSize(MIN_BUFFER_BYTES, Number.MAX_SAFE_INTEGER, 'of at least 1MiB, such as 8MiB or 2048KiB'),
    help: 'response bytes buffered for one client connection that does not read them (at least 1MiB; KiB, MiB, GiB or bytes); then its upstreams are read no further' }),
  setting({ key: 'maxBufferedBytesPerAddress', flag: 'max-buffered-bytes-per-address', env: 'PROXIMATION_MAX_BUFFERED_BYTES_PER_ADDRESS', default: '32MiB', parse: byteSize(MIN_BUFFER_BYTES, Number.MAX_SAFE_INTEGER, 'of at least 1MiB, such as 8MiB or 2048KiB'),
    help: 'the same for all connections of one client address' }),
  setting({ key: 'metricsAuth', flag: 'metrics-auth', env: 'PROXIMATION_METRICS_AUTH', default: 'auto', parse: oneOf(['auto', 'on', 'off'] as const),
    help: 'whether GET /metrics needs the admin token: on, off, or auto (when the admin address is not loopback and a token is set)' }),
  setting({ key: 'healthIntervalMs', flag: 'health-interval', env: 'PROXIMATION_HEALTH_INTERVAL', default: '5s', parse: duration,
    help: 'how often every upstream of an active version is checked' }),
  setting({ key: 'healthPath', flag: 'health-path', env: 'PROXIMATION_HEALTH_PATH', default: '/', parse: requestPath,
    help: 'path the health check GETs; 2xx or 3xx is healthy' }),
  setting({ key: 'healthTimeoutMs', flag: 'health-timeout', env: 'PROXIMATION_HEALTH_TIMEOUT', default: '2s', parse: duration,
    help: 'a health check that takes longer fails' }),
  setting({ key: 'websocketDrainMs', flag: 'websocket-drain', env: 'PROXIMATION_WEBSOCKET_DRAIN', default: '5m', parse: duration,
    help: 'after a version switch, WebSockets still open to the old version are closed (1001) after this' }),
  setting({ key: 'workers', flag: 'workers', env: 'PROXIMATION_WORKERS', default: undefined,
    defaultText: 'the CPUs this process may use: the cgroup CPU quota, else os.availableParallelism()', parse: workerCount,
    help: 'worker processes serving HTTP and HTTPS, under one primary; 1: a single process' }),
];

type SettingValues = Readonly<Record<string, string | boolean | string[] | undefined>>;

/** The text of setting `s` and how it was given: `--flag`, `VARIABLE` or `VARIABLE (default)`. */
function givenSetting(
  s: (typeof SETTINGS)[number],
  values: SettingValues,
  env: NodeJS.ProcessEnv,
  overrides: Partial<Record<keyof Config, string>>,
): { text: string | undefined; field: string } {
  const fromFlag = values[s.flag];
  const fromEnv = env[s.env];
  if (typeof fromFlag === 'string') return { text: fromFlag, field: `--${s.flag}` };
  if (fromEnv !== undefined && fromEnv !== '') return { text: fromEnv, field: s.env };
  return { text: overrides[s.key] ?? s.default, field: `${s.env} (default)` };
}

/**
 * Where the value of setting `key` came from, for a message about it: `from --flag`, `from VARIABLE`,
 * or, for a default, which variable and flag set it.
 */
export function settingOrigin(key: keyof Config, values: SettingValues, env: NodeJS.ProcessEnv, overrides: Partial<Record<keyof Config, string>> = {}): string {
  const s = SETTINGS.find((candidate) => candidate.key === key)!;
  const { field } = givenSetting(s, values, env, overrides);
  return field.endsWith(' (default)') ? `the default; set ${s.env} or --${s.flag}` : `from ${field}`;
}

/**
 * Builds the Config from flags (`values`, as parsed by util.parseArgs with `settingsArgOptions()`),
 * then `env`, then `overrides` (defaults of a command such as `demo`), then the built-in defaults.
 */
export function loadConfig(
  values: SettingValues,
  env: NodeJS.ProcessEnv,
  overrides: Partial<Record<keyof Config, string>> = {},
): Config {
  const out: Partial<Record<keyof Config, unknown>> = {};
  /** How each setting was given, for messages: `--flag`, `VARIABLE` or `VARIABLE (default)`. */
  const fields = {} as Record<keyof Config, string>;
  for (const s of SETTINGS) {
    const { text, field } = givenSetting(s, values, env, overrides);
    fields[s.key] = field;
    if (text === undefined) continue;
    try {
      out[s.key] = s.parse(text, field);
    } catch (err) {
      if (field.startsWith('--') && isProximationError(err)) {
        throw usageError({ program: 'proximation', command: '' }, err.message);
      }
      throw err;
    }
  }
  const config = out as Config;
  const conflict = (message: string) => new ProximationError('ERR_CONFIG_INVALID', message);
  if ((config.acmeEabKid === undefined) !== (config.acmeEabHmacKey === undefined)) {
    throw conflict('PROXIMATION_ACME_EAB_KID and PROXIMATION_ACME_EAB_HMAC_KEY (--acme-eab-kid, --acme-eab-hmac-key) go together: set both or neither.');
  }
  if (config.adminToken !== undefined && config.adminTokenFile !== undefined) {
    throw conflict('PROXIMATION_ADMIN_TOKEN and PROXIMATION_ADMIN_TOKEN_FILE (--admin-token, --admin-token-file) are both set: set one (the file is safer).');
  }
  // Node refuses to start an HTTP server whose headers timeout exceeds its request timeout (0: none).
  if (config.requestTimeoutMs > 0 && config.headersTimeoutMs > config.requestTimeoutMs) {
    throw conflict(
      `${fields.requestTimeoutMs}=${formatDuration(config.requestTimeoutMs)} is shorter than ${fields.headersTimeoutMs}=${formatDuration(config.headersTimeoutMs)}: ` +
        'a request cannot take less time than its headers; raise the request timeout or lower the headers timeout.',
    );
  }
  const clash = samePortClash(config, fields);
  if (clash !== undefined) throw conflict(clash);
  checkDnsProvider(config);
  if (config.adminTokenFile !== undefined) config.adminToken = readAdminTokenFile(config.adminTokenFile);
  if (config.metricsAuth === 'on' && config.adminToken === undefined) {
    throw new ProximationError(
      'ERR_CONFIG_INVALID',
      'PROXIMATION_METRICS_AUTH=on (--metrics-auth) needs the admin token: set PROXIMATION_ADMIN_TOKEN_FILE (or PROXIMATION_ADMIN_TOKEN), or use auto or off.',
    );
  }
  resolveStorage(config, fields);
  config.routesPath ??= path.join(config.letsencryptDir, 'proximation', 'routes.json');
  config.publicHttpsPort ??= config.httpsPort;
  config.workers ??= availableCpus();
  return config;
}

/**
 * The storage and the letsencrypt directory together: a storage directory is the letsencrypt directory
 * (two different ones contradict each other); on Redis a letsencrypt directory that was set is the
 * certbot copy; the key prefix is checked against the storage it belongs to.
 */
function resolveStorage(config: Config, fields: Record<keyof Config, string>): void {
  const storage = config.storage as StorageSetting | undefined;
  const given = (key: keyof Config): boolean => !fields[key].endsWith('(default)');
  if (storage === undefined) {
    config.storage = parseStorageSetting(config.letsencryptDir, fields.letsencryptDir, config.storagePrefix, fields.storagePrefix);
    config.certbotCopyDir = undefined;
    return;
  }
  config.storage = parseStorageSetting(storage.value, storage.what, config.storagePrefix, fields.storagePrefix);
  if (config.storage.backend === 'file') {
    if (given('letsencryptDir') && config.letsencryptDir !== config.storage.value) {
      throw new ProximationError(
        'ERR_CONFIG_INVALID',
        `${fields.storage}=${config.storage.value} and ${fields.letsencryptDir}=${config.letsencryptDir} name two directories for one state: set one of them.`,
      );
    }
    config.letsencryptDir = config.storage.value;
    config.certbotCopyDir = undefined;
    return;
  }
  config.certbotCopyDir = given('letsencryptDir') ? config.letsencryptDir : undefined;
}

/** Two listeners on one port and address would fail at start with EADDRINUSE, naming neither setting. */
function samePortClash(config: Config, fields: Record<keyof Config, string>): string | undefined {
  const overlaps = config.listenAddress === undefined || config.listenAddress === config.adminAddress;
  const pairs: Array<[keyof Config, keyof Config, boolean]> = [
    ['httpPort', 'httpsPort', true],
    ['httpPort', 'adminPort', overlaps],
    ['httpsPort', 'adminPort', overlaps],
  ];
  for (const [a, b, shared] of pairs) {
    const port = config[a];
    if (shared && port !== 0 && port === config[b]) {
      return `${fields[a]}=${String(port)} and ${fields[b]}=${String(config[b])} are the same port: give each listener its own.`;
    }
  }
  return undefined;
}

/** The provider's own settings must be there; dns-01 as the global challenge needs a provider. */
function checkDnsProvider(config: Config): void {
  const missing = (what: string): never => {
    throw new ProximationError('ERR_CONFIG_INVALID', what);
  };
  if (config.issuer === 'acme' && config.acmeChallenge === 'dns-01' && config.dnsProvider === undefined) {
    missing(`PROXIMATION_ACME_CHALLENGE=dns-01 needs PROXIMATION_DNS_PROVIDER (--dns-provider): ${DNS_PROVIDERS.join(', ')}.`);
  }
  if (config.dnsProvider === 'rfc2136' && config.dnsRfc2136Credentials === undefined) {
    missing("PROXIMATION_DNS_PROVIDER=rfc2136 needs PROXIMATION_DNS_RFC2136_CREDENTIALS (--dns-rfc2136-credentials): certbot's dns-rfc2136 credentials file.");
  }
  if (config.dnsProvider === 'hook' && (config.dnsHookAuth === undefined || config.dnsHookCleanup === undefined)) {
    missing('PROXIMATION_DNS_PROVIDER=hook needs both PROXIMATION_DNS_HOOK_AUTH and PROXIMATION_DNS_HOOK_CLEANUP (--dns-hook-auth, --dns-hook-cleanup).');
  }
}

/** The parseArgs option table for every setting (all take a string value). */
export function settingsArgOptions(): Record<string, { type: 'string' }> {
  return Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));
}

/** The help lines of the settings (of `only` those, when given). */
export function settingsHelp(only?: readonly (keyof Config)[]): string {
  const rows = SETTINGS.filter((s) => only === undefined || only.includes(s.key)).map((s) => {
    const shown = s.defaultText ?? s.default;
    const def = shown === undefined ? '' : ` (default: ${shown})`;
    return `  --${s.flag} <value>\n      ${s.env}: ${s.help}${def}`;
  });
  return rows.join('\n');
}
