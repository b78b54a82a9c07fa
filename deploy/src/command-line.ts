/**
 * What every deploy command shares: usage errors, strict option parsing, flag values (integers,
 * durations), where the routing table is reached (the file, or a proxy's admin API), and text or
 * --json output. The parsing and the error style are both CLIs' (command-line.ts in
 * @proximation/shared); this module binds them to deploy's commands and help.
 *
 * Usage errors are ProximationError `ERR_USAGE` (the CLI exits with 2 for them, 1 for every other
 * error); their message says what to type instead and points at the command's --help. A flag value
 * that is malformed on its own (a duration, a number, an upstream URL, a hostname) is a usage error; a
 * value the routing table rejects given its contents (an unknown site, a host another site has) is
 * not, it fails the command with the table's error.
 */
import { join } from 'node:path';
import {
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
import { fileTarget, issuancePolicyFromEnv } from './file-target.js';
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
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_OPTIONS_HELP = `  --routes FILE          the routing table file (default: $PROXIMATION_ROUTES, else
                         $PROXIMATION_LETSENCRYPT_DIR/proximation/routes.json)
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
}

/**
 * Where the routing table is: the file named by --routes, or the admin API of the proxy named by
 * --proxy; without either flag, $PROXIMATION_ROUTES (else `<$PROXIMATION_LETSENCRYPT_DIR>/proximation/routes.json`,
 * where proximation itself looks) or $DEPLOY_PROXY_URL. Both, no way at all, a
 * malformed URL or a proxy without a token are usage errors that say what to give.
 */
export function openRoutesTarget(values: TargetFlags, env: NodeJS.ProcessEnv, command: string): RoutesTarget {
  const given = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  if (given(values.routes) !== undefined && given(values.proxy) !== undefined) {
    throw usageError("Give either --routes FILE (the routing table file) or --proxy URL (a proxy's admin API), not both.", command);
  }
  const fromEnv = given(env.PROXIMATION_ROUTES) ?? defaultRoutesPath(given(env.PROXIMATION_LETSENCRYPT_DIR));
  const routes = given(values.routes) ?? (given(values.proxy) === undefined ? fromEnv : undefined);
  const proxy = given(values.proxy) ?? (given(values.routes) === undefined ? given(env.DEPLOY_PROXY_URL) : undefined);
  if (routes !== undefined && proxy !== undefined) {
    const variable = given(env.PROXIMATION_ROUTES) === undefined ? 'PROXIMATION_LETSENCRYPT_DIR' : 'PROXIMATION_ROUTES';
    throw usageError(`Both ${variable} and DEPLOY_PROXY_URL are set: choose with --routes FILE or --proxy URL, or unset one of them.`, command);
  }
  if (proxy !== undefined) {
    return apiTarget(proxyUrl(proxy, given(values.proxy) === undefined ? 'DEPLOY_PROXY_URL' : '--proxy', command), tokenSource(values, env, command));
  }
  if (given(values['token-file']) !== undefined) throw usageError('--token-file only applies with --proxy (or DEPLOY_PROXY_URL).', command);
  if (routes === undefined) {
    throw usageError(
      'No routing table given: pass --routes FILE or set PROXIMATION_ROUTES (normally <letsencrypt dir>/proximation/routes.json) ' +
        'or PROXIMATION_LETSENCRYPT_DIR (the proxies\' directory), ' +
        "or reach it through a proxy's admin API with --proxy URL or DEPLOY_PROXY_URL.",
      command,
    );
  }
  return fileTarget(routes, issuancePolicyFromEnv(env), given(values.routes) === undefined ? 'from PROXIMATION_ROUTES' : 'from --routes');
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
