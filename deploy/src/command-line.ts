/**
 * What every deploy command shares: usage errors, strict option parsing, flag values (integers,
 * durations), where the routing table is reached (the file, the proxies' storage on a directory or
 * Redis, or a proxy's admin API), and text or --json output. What a command opens to reach it (a Redis
 * connection) is closed when the command ends (`withCommandScope`, which cli.ts runs every command in). The parsing and the error style are both CLIs' (command-line.ts in
 * @proximation/shared); this module binds them to deploy's commands and help.
 *
 * Usage errors are ProximationError `ERR_USAGE` (the CLI exits with 2 for them, 1 for every other
 * error); their message says what to type instead and points at the command's --help. A flag value
 * that is malformed on its own (a duration, a number, an upstream URL, a hostname) is a usage error; a
 * value the routing table rejects given its contents (an unknown site, a host another site has) is
 * not, it fails the command with the table's error.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { join } from 'node:path';
import {
  ROUTES_KEY,
  openStorageSetting,
  parseStorageSetting,
  type StorageSetting,
  durationFlag as sharedDurationFlag,
  integerFlag as sharedIntegerFlag,
  parseCommandLine,
  rejectPositionals as sharedRejectPositionals,
  required as sharedRequired,
  normalizeHostname,
  normalizeUpstreamUrl,
  urlParseProblem,
  usageError as sharedUsageError,
  type FlagsOf,
  type OptionTable,
  type UsageContext,
} from '@proximation/shared';
import { isProximationError, type ProximationError } from '@proximation/shared';
import { apiTarget } from './api-target.js';
import type { TokenSource } from './api-target.js';
import { fileTarget, issuancePolicyFromEnv, storageTarget } from './storage-target.js';
import type { CommandIo } from './confirm.js';
import type { RoutesTarget } from './routes-target.js';

export { output, plural } from '@proximation/shared';

export interface Command {
  /** The words that select the command, such as "site add". */
  readonly name: string;
  /** The command line in brief, and what it does, for the global help. */
  readonly synopsis: string;
  readonly summary: string;
  /**
   * Parses `args` (what follows the command words) and runs the command; resolves to its output.
   * `io` is where a command may ask for confirmation (see confirm.ts); without it, it never asks.
   * A number is the exit status of a command that printed its own output (deploy run: the app's).
   */
  run(args: string[], env: NodeJS.ProcessEnv, io?: CommandIo): Promise<string | number>;
}

export const COMMON_OPTIONS = {
  routes: { type: 'string' },
  proxy: { type: 'string' },
  'token-file': { type: 'string' },
  storage: { type: 'string' },
  'storage-prefix': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_OPTIONS_HELP = `  --routes FILE          the routing table file (default: $PROXIMATION_ROUTES, else
                         $PROXIMATION_LETSENCRYPT_DIR/proximation/routes.json)
  --storage DIR|URL      instead, the proxies' storage (default: $PROXIMATION_STORAGE): a
                         directory, or redis://[user:password@]host:port[/db] (rediss:// for TLS)
  --storage-prefix P     with a Redis storage: its key prefix (default: $PROXIMATION_STORAGE_PREFIX,
                         else proximation:)
  --proxy URL            instead, a proxy's admin API, such as http://10.0.1.2:9180
                         (default: $DEPLOY_PROXY_URL); health checks then run on the proxy
  --token-file FILE      with --proxy: the file holding the proxy's admin token
                         (default: the token in $DEPLOY_TOKEN)
  -h, --help             show this help`;

export const JSON_OPTION = { json: { type: 'boolean' } } as const;

export const JSON_OPTION_HELP = '  --json                 print the result as JSON';

/** Where deploy's usage errors for `command` ('' for deploy itself) point. */
export function deployUsage(command: string): UsageContext {
  return { program: 'deploy', command };
}

export function usageError(message: string, command: string): ProximationError {
  return sharedUsageError(deployUsage(command), message);
}

interface TargetFlags {
  routes?: string | undefined;
  proxy?: string | undefined;
  'token-file'?: string | undefined;
  storage?: string | undefined;
  'storage-prefix'?: string | undefined;
}

/** What the commands running in this async context opened; closed when the command ends. */
const commandScope = new AsyncLocalStorage<Array<() => Promise<void>>>();

/** Runs `command`, then closes what it opened to reach the table (also when it throws). */
export async function withCommandScope<T>(command: () => Promise<T>): Promise<T> {
  const closers: Array<() => Promise<void>> = [];
  try {
    return await commandScope.run(closers, command);
  } finally {
    await Promise.all(closers.map((close) => close().catch(() => undefined)));
  }
}

const WAYS = {
  routes: '--routes FILE (the routing table file)',
  storage: "--storage DIR|URL (the proxies' storage)",
  proxy: "--proxy URL (a proxy's admin API)",
} as const;

/**
 * Where the routing table is: the file named by --routes, the table in the storage named by --storage
 * (a directory: its `proximation/routes.json`, unless $PROXIMATION_ROUTES moves it, as for the proxies;
 * Redis: the key `proximation/routes.json` under the key prefix), or the admin API of the proxy named by
 * --proxy. Without any of them, where the proxies with this environment find it: $PROXIMATION_STORAGE
 * when it is a Redis URL, else $PROXIMATION_ROUTES, else the table in $PROXIMATION_STORAGE or
 * $PROXIMATION_LETSENCRYPT_DIR; or $DEPLOY_PROXY_URL. Two ways at once, no way at all, a malformed URL or
 * key prefix given as a flag, or a proxy without a token are usage errors that say what to give. A
 * Redis storage is connected here: a wrong password or an unreachable server fails the command
 * (ERR_STORAGE_AUTH, ERR_STORAGE_UNAVAILABLE, naming the URL without its password).
 */
export async function openRoutesTarget(values: TargetFlags, env: NodeJS.ProcessEnv, command: string): Promise<RoutesTarget> {
  const given = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  const flagged = (['routes', 'storage', 'proxy'] as const).filter((way) => given(values[way]) !== undefined);
  if (flagged.length > 1) throw usageError(`Give either ${WAYS[flagged[0]!]} or ${WAYS[flagged[1]!]}, not both.`, command);
  const prefixFlag = given(values['storage-prefix']);
  const storageSetting = (value: string, what: string): StorageSetting => {
    const prefix = prefixFlag ?? given(env.PROXIMATION_STORAGE_PREFIX);
    const prefixWhat = prefixFlag === undefined ? 'PROXIMATION_STORAGE_PREFIX' : '--storage-prefix';
    try {
      return parseStorageSetting(value, what, prefix, prefixWhat);
    } catch (err) {
      const fromFlag = (isProximationError(err, 'ERR_STORAGE_URL') && what === '--storage') || (isProximationError(err, 'ERR_STORAGE_PREFIX') && prefixFlag !== undefined);
      throw fromFlag ? usageError((err as ProximationError).message, command) : err;
    }
  };
  const storageFlag = given(values.storage);
  const storageEnv = flagged.length === 0 ? given(env.PROXIMATION_STORAGE) : undefined;
  const storage = storageFlag === undefined ? (storageEnv === undefined ? undefined : storageSetting(storageEnv, 'PROXIMATION_STORAGE')) : storageSetting(storageFlag, '--storage');
  const routesEnv = given(env.PROXIMATION_ROUTES);
  const fromEnv = storage?.backend === 'redis' ? undefined : (routesEnv ?? defaultRoutesPath(storage?.value ?? given(env.PROXIMATION_LETSENCRYPT_DIR)));
  const routes = given(values.routes) ?? (flagged.length === 0 || storageFlag !== undefined ? fromEnv : undefined);
  const proxy = given(values.proxy) ?? (flagged.length === 0 ? given(env.DEPLOY_PROXY_URL) : undefined);
  const redis = storage?.backend === 'redis' ? storage : undefined;
  if ((routes !== undefined || redis !== undefined) && proxy !== undefined) {
    const variable = redis !== undefined || (routesEnv === undefined && storage !== undefined) ? 'PROXIMATION_STORAGE' : routesEnv === undefined ? 'PROXIMATION_LETSENCRYPT_DIR' : 'PROXIMATION_ROUTES';
    throw usageError(`Both ${variable} and DEPLOY_PROXY_URL are set: choose with --routes FILE, --storage DIR|URL or --proxy URL, or unset one of them.`, command);
  }
  if (prefixFlag !== undefined && redis === undefined) throw usageError('--storage-prefix only applies with a Redis storage (--storage redis://... or PROXIMATION_STORAGE).', command);
  if (proxy !== undefined) {
    return apiTarget(proxyUrl(proxy, given(values.proxy) === undefined ? 'DEPLOY_PROXY_URL' : '--proxy', command), tokenSource(values, env, command));
  }
  if (given(values['token-file']) !== undefined) throw usageError('--token-file only applies with --proxy (or DEPLOY_PROXY_URL).', command);
  const policy = issuancePolicyFromEnv(env);
  if (redis !== undefined) {
    const opened = await openStorageSetting(redis);
    commandScope.getStore()?.push(() => opened.close());
    return storageTarget({ storage: opened, key: ROUTES_KEY }, policy, `from ${redis.what}`);
  }
  if (routes === undefined) {
    throw usageError(
      'No routing table given: pass --routes FILE or set PROXIMATION_ROUTES (normally <letsencrypt dir>/proximation/routes.json) ' +
        'or PROXIMATION_LETSENCRYPT_DIR (the proxies\' directory), pass --storage or set PROXIMATION_STORAGE (the proxies\' storage), ' +
        "or reach it through a proxy's admin API with --proxy URL or DEPLOY_PROXY_URL.",
      command,
    );
  }
  const origin = given(values.routes) !== undefined ? 'from --routes' : routesEnv !== undefined ? 'from PROXIMATION_ROUTES' : storage === undefined ? 'from PROXIMATION_LETSENCRYPT_DIR' : `from ${storage.what}`;
  return fileTarget(routes, policy, origin);
}

/** Where proximation keeps its routing table in `letsencryptDir` unless PROXIMATION_ROUTES moves it. */
function defaultRoutesPath(letsencryptDir: string | undefined): string | undefined {
  return letsencryptDir === undefined ? undefined : join(letsencryptDir, 'proximation', 'routes.json');
}

function proxyUrl(text: string, field: string, command: string): URL {
  const invalid = (problem: string) =>
    usageError(`Invalid ${field} ${JSON.stringify(text)}: ${problem}; give the URL of a proxy's admin listener, such as http://10.0.1.2:9180.`, command);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(urlParseProblem(text));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('the scheme must be http or https');
  if (url.username !== '' || url.password !== '') throw invalid('it must not contain credentials (the token goes in --token-file)');
  if (url.search !== '' || url.hash !== '') throw invalid('it must not have a query or fragment');
  return url;
}

function tokenSource(values: TargetFlags, env: NodeJS.ProcessEnv, command: string): TokenSource {
  const file = values['token-file'];
  if (file !== undefined && file !== '') return { file };
  const value = env.DEPLOY_TOKEN;
  if (value !== undefined && value !== '') return { value };
  throw usageError("The proxy's admin API needs its token: pass --token-file FILE (a file holding the token) or set DEPLOY_TOKEN.", command);
}

/**
 * Parses a command that takes flags only. Returns undefined for --help (the caller prints its help),
 * else the flags; a stray argument is a usage error.
 */
export function parseFlags<const O extends OptionTable>(args: string[], options: O, command: string): FlagsOf<O> | undefined {
  const { values, positionals } = parseCommandLine(args, options, deployUsage(command));
  if ((values as { help?: unknown }).help === true) return undefined;
  // "deploy versions dev" is a natural slip for "--site dev" ("register devbuild-42" for "--tag"): say so.
  const flag = 'tag' in options ? 'tag' : 'site';
  if (positionals.length === 1 && flag in options && (values as Record<string, unknown>)[flag] === undefined) {
    throw usageError(`Unexpected argument ${JSON.stringify(positionals[0])}; to name the ${flag}, write --${flag} ${positionals[0]}.`, command);
  }
  rejectPositionals(positionals, command);
  return values;
}

/**
 * Parses a command that takes one site name and flags (`site add <site> ...`). Returns undefined for
 * --help; a missing name or a second argument is a usage error showing `usage` and `oneName`.
 */
export function parseSiteCommand<const O extends OptionTable>(
  args: string[],
  options: O,
  command: string,
  usage: string,
  oneName: string,
): { values: FlagsOf<O>; site: string } | undefined {
  const { values, positionals } = parseCommandLine(args, options, deployUsage(command));
  if ((values as { help?: unknown }).help === true) return undefined;
  const [site, ...extra] = positionals;
  if (site === undefined) throw usageError(`Missing the site name: ${usage}.`, command);
  if (extra.length > 0) throw usageError(`Unexpected argument ${JSON.stringify(extra[0])}: ${oneName}.`, command);
  return { values, site };
}

export function rejectPositionals(positionals: readonly string[], command: string): void {
  sharedRejectPositionals(positionals, deployUsage(command));
}

/** The value of a required option; its absence is a usage error that shows an example. */
export function required(value: string | undefined, flag: string, example: string, command: string): string {
  return sharedRequired(value, flag, example, deployUsage(command));
}

/** A whole number within [min, max] given as `flag`'s value. */
export function integerFlag(text: string, flag: string, min: number, max: number, command: string): number {
  return sharedIntegerFlag(text, flag, min, max, deployUsage(command));
}

/**
 * An upstream URL given as `flag`'s value, normalised to its origin; a malformed one (scheme, path,
 * credentials, port) is a usage error with the routing table's own account of what is wrong.
 */
export function upstreamFlag(text: string, flag: string, command: string): string {
  try {
    return normalizeUpstreamUrl(text, flag);
  } catch (err) {
    if (isProximationError(err, 'ERR_INVALID_UPSTREAM')) throw usageError(err.message, command);
    throw err;
  }
}

/**
 * A site's hostname (or wildcard host, `*.example.com`) given as `flag`'s value, normalised; a malformed
 * one (or an IP address) is a usage error. Whether a wildcard can be certified is the table's rule.
 */
export function hostFlag(text: string, flag: string, command: string): string {
  try {
    return normalizeHostname(text, { allowWildcard: true, refuseAddresses: true, field: flag });
  } catch (err) {
    if (isProximationError(err, 'ERR_INVALID_HOSTNAME')) throw usageError(err.message, command);
    throw err;
  }
}

/** A duration such as 500ms, 2s or 1m given as `flag`'s value, in milliseconds. */
export function durationFlag(text: string, flag: string, command: string): number {
  return sharedDurationFlag(text, flag, deployUsage(command));
}
