/**
 * The one validated configuration of a proximation process.
 *
 * Every setting has one definition below, which yields its environment variable (`PROXIMATION_*`, for
 * ECS task definitions), its command-line flag, its default and its help line, so the three can never
 * drift apart. `loadConfig` reads flags first, then the environment, then the default, and throws a
 * `ProximationError` (`ERR_CONFIG_INVALID`) naming the flag or variable, the value and what is accepted.
 */
import net from 'node:net';
import path from 'node:path';
import { ProximationError, parseDuration } from '@proximation/shared';

export type Issuer = 'local' | 'acme';
export type LogFormat = 'json' | 'pretty';

export interface Config {
  httpPort: number;
  httpsPort: number;
  /** The HTTPS port clients see (behind a port mapping); used in redirects. */
  publicHttpsPort: number;
  adminPort: number;
  listenAddress: string | undefined;
  adminAddress: string;
  letsencryptDir: string;
  routesPath: string;
  issuer: Issuer;
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
  maxConnections: number;
  healthIntervalMs: number;
  healthPath: string;
  healthTimeoutMs: number;
}

/** Trusted peers whose X-Forwarded-* headers are kept: addresses and CIDR blocks, IPv4 and IPv6. */
export interface TrustedProxies {
  readonly list: readonly string[];
  has(address: string): boolean;
}

export function parseTrustedProxies(text: string, field: string): TrustedProxies {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const blocks = new net.BlockList();
  for (const entry of list) {
    const [address = '', prefixText] = entry.split('/');
    const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
    const max = family === 'ipv4' ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (family === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw invalid(field, entry, 'an IP address or CIDR block such as 10.0.0.0/16 or fd00::/8, comma-separated');
    }
    blocks.addSubnet(address, prefix, family);
  }
  return {
    list,
    has(address) {
      if (list.length === 0) return false;
      // Node reports IPv4 peers on a dual-stack socket as ::ffff:a.b.c.d.
      const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
      return blocks.check(plain, net.isIPv4(plain) ? 'ipv4' : 'ipv6');
    },
  };
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

function requestPath(text: string, field: string): string {
  if (!/^\/[\x21-\x7e]*$/.test(text)) throw invalid(field, text, 'a request path starting with / (printable ASCII, no spaces)');
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
    help: 'admin listener: /healthz' }),
  setting({ key: 'listenAddress', flag: 'listen-address', env: 'PROXIMATION_LISTEN_ADDRESS', default: undefined, defaultText: 'all interfaces', parse: address,
    help: 'address of the HTTP and HTTPS listeners' }),
  setting({ key: 'adminAddress', flag: 'admin-address', env: 'PROXIMATION_ADMIN_ADDRESS', default: '127.0.0.1', parse: address,
    help: 'address of the admin listener (keep it private)' }),
  setting({ key: 'letsencryptDir', flag: 'letsencrypt-dir', env: 'PROXIMATION_LETSENCRYPT_DIR', default: '/etc/letsencrypt', parse: absolutePath,
    help: "certificates in certbot's layout, plus proximation's own state under proximation/" }),
  setting({ key: 'routesPath', flag: 'routes', env: 'PROXIMATION_ROUTES', default: undefined, defaultText: '<letsencrypt dir>/proximation/routes.json', parse: absolutePath,
    help: 'the routing table' }),
  setting({ key: 'issuer', flag: 'issuer', env: 'PROXIMATION_ISSUER', default: 'local', parse: oneOf(['local', 'acme'] as const),
    help: 'who issues certificates: local (an embedded CA) or acme' }),
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
    help: 'time a client has to send a whole HTTP/1.1 request, body included' }),
  setting({ key: 'idleTimeoutMs', flag: 'idle-timeout', env: 'PROXIMATION_IDLE_TIMEOUT', default: '1m', parse: duration,
    help: 'idle client connections are closed after this' }),
  setting({ key: 'upstreamConnectTimeoutMs', flag: 'upstream-connect-timeout', env: 'PROXIMATION_UPSTREAM_CONNECT_TIMEOUT', default: '5s',
    parse: duration, help: 'connecting to an upstream; then 504' }),
  setting({ key: 'upstreamTimeoutMs', flag: 'upstream-timeout', env: 'PROXIMATION_UPSTREAM_TIMEOUT', default: '60s', parse: duration,
    help: 'waiting for response headers, or between body chunks, from an upstream; then 504' }),
  setting({ key: 'drainTimeoutMs', flag: 'drain-timeout', env: 'PROXIMATION_DRAIN_TIMEOUT', default: '20s', parse: duration,
    help: 'on SIGTERM, time in-flight requests get to finish' }),
  setting({ key: 'maxHeaderSize', flag: 'max-header-size', env: 'PROXIMATION_MAX_HEADER_SIZE', default: '16384', parse: positiveInt,
    help: 'largest request header block in bytes; larger gets 431' }),
  setting({ key: 'maxConnections', flag: 'max-connections', env: 'PROXIMATION_MAX_CONNECTIONS', default: '10000', parse: positiveInt,
    help: 'client connections per listener; more are refused' }),
  setting({ key: 'healthIntervalMs', flag: 'health-interval', env: 'PROXIMATION_HEALTH_INTERVAL', default: '5s', parse: duration,
    help: 'how often every upstream of an active version is checked' }),
  setting({ key: 'healthPath', flag: 'health-path', env: 'PROXIMATION_HEALTH_PATH', default: '/', parse: requestPath,
    help: 'path the health check GETs; 2xx or 3xx is healthy' }),
  setting({ key: 'healthTimeoutMs', flag: 'health-timeout', env: 'PROXIMATION_HEALTH_TIMEOUT', default: '2s', parse: duration,
    help: 'a health check that takes longer fails' }),
];

/**
 * Builds the Config from flags (`values`, as parsed by util.parseArgs with `settingsArgOptions()`),
 * then `env`, then `overrides` (defaults of a command such as `demo`), then the built-in defaults.
 */
export function loadConfig(
  values: Readonly<Record<string, string | boolean | undefined>>,
  env: NodeJS.ProcessEnv,
  overrides: Partial<Record<keyof Config, string>> = {},
): Config {
  const out: Partial<Record<keyof Config, unknown>> = {};
  for (const s of SETTINGS) {
    const fromFlag = values[s.flag];
    const fromEnv = env[s.env];
    let text: string | undefined;
    let field: string;
    if (typeof fromFlag === 'string') {
      text = fromFlag;
      field = `--${s.flag}`;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      text = fromEnv;
      field = s.env;
    } else {
      text = overrides[s.key] ?? s.default;
      field = `${s.env} (default)`;
    }
    if (text !== undefined) out[s.key] = s.parse(text, field);
  }
  const config = out as Config;
  config.routesPath ??= path.join(config.letsencryptDir, 'proximation', 'routes.json');
  config.publicHttpsPort ??= config.httpsPort;
  return config;
}

/** The parseArgs option table for every setting (all take a string value). */
export function settingsArgOptions(): Record<string, { type: 'string' }> {
  return Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));
}

export function settingsHelp(): string {
  const rows = SETTINGS.map((s) => {
    const shown = s.defaultText ?? s.default;
    const def = shown === undefined ? '' : ` (default: ${shown})`;
    return `  --${s.flag} <value>\n      ${s.env}: ${s.help}${def}`;
  });
  return rows.join('\n');
}
