/**
 * What every deploy command shares: usage errors, strict option parsing, flag values (integers,
 * durations), where the routing table is reached (the file, or a proxy's admin API), and text or
 * --json output.
 *
 * Usage errors are ProximationError `ERR_USAGE` (the CLI exits with 2 for them, 1 for every other
 * error); their message says what to type instead and points at the command's --help. A flag value
 * that cannot be parsed (a duration, a number) is a usage error; a value the routing table rejects (a
 * site name, an upstream URL) is not, it fails the command with the table's error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ProximationError, isProximationError, parseDuration } from '@proximation/shared';
import { apiTarget } from './api-target.js';
import type { TokenSource } from './api-target.js';
import { fileTarget, issuancePolicyFromEnv } from './file-target.js';
import type { RoutesTarget } from './routes-target.js';

export interface Command {
  /** The words that select the command, such as "site add". */
  readonly name: string;
  /** The command line in brief, and what it does, for the global help. */
  readonly synopsis: string;
  readonly summary: string;
  /** Parses `args` (what follows the command words) and runs the command; resolves to its output. */
  run(args: string[], env: NodeJS.ProcessEnv): Promise<string>;
}

export const COMMON_OPTIONS = {
  routes: { type: 'string' },
  proxy: { type: 'string' },
  'token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_OPTIONS_HELP = `  --routes FILE          the routing table file (default: $PROXIMATION_ROUTES)
  --proxy URL            instead, a proxy's admin API, such as http://10.0.1.2:9180
                         (default: $DEPLOY_PROXY_URL); health checks then run on the proxy
  --token-file FILE      with --proxy: the file holding the proxy's admin token
                         (default: the token in $DEPLOY_TOKEN)
  -h, --help             show this help`;

export const JSON_OPTION = { json: { type: 'boolean' } } as const;

export const JSON_OPTION_HELP = '  --json                 print the result as JSON';

export function usageError(message: string, command: string): ProximationError {
  const help = command === '' ? 'deploy --help' : `deploy ${command} --help`;
  return new ProximationError('ERR_USAGE', `${message}\nRun "${help}" for usage.`);
}

/** Runs node:util parseArgs (strict), turning its errors into usage errors for `command`. */
export function parseCommandLine<T>(parse: () => T, command: string): T {
  try {
    return parse();
  } catch (err) {
    const code = err instanceof Error ? String((err as NodeJS.ErrnoException).code) : '';
    if (code.startsWith('ERR_PARSE_ARGS')) {
      // Node's advice about "--" for unknown options misleads here: a typo is far likelier.
      const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '([^']*)'/.exec((err as Error).message) : null;
      throw usageError(unknown === null ? (err as Error).message : `Unknown option ${unknown[1]}.`, command);
    }
    throw err;
  }
}

interface TargetFlags {
  routes?: string | undefined;
  proxy?: string | undefined;
  'token-file'?: string | undefined;
}

/**
 * Where the routing table is: the file named by --routes, or the admin API of the proxy named by
 * --proxy; without either flag, $PROXIMATION_ROUTES or $DEPLOY_PROXY_URL. Both, no way at all, a
 * malformed URL or a proxy without a token are usage errors that say what to give.
 */
export function openRoutesTarget(values: TargetFlags, env: NodeJS.ProcessEnv, command: string): RoutesTarget {
  const given = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  if (given(values.routes) !== undefined && given(values.proxy) !== undefined) {
    throw usageError("Give either --routes FILE (the routing table file) or --proxy URL (a proxy's admin API), not both.", command);
  }
  const routes = given(values.routes) ?? (given(values.proxy) === undefined ? given(env.PROXIMATION_ROUTES) : undefined);
  const proxy = given(values.proxy) ?? (given(values.routes) === undefined ? given(env.DEPLOY_PROXY_URL) : undefined);
  if (routes !== undefined && proxy !== undefined) {
    throw usageError('Both PROXIMATION_ROUTES and DEPLOY_PROXY_URL are set: choose with --routes FILE or --proxy URL, or unset one of them.', command);
  }
  if (proxy !== undefined) {
    return apiTarget(proxyUrl(proxy, given(values.proxy) === undefined ? 'DEPLOY_PROXY_URL' : '--proxy', command), tokenSource(values, env, command));
  }
  if (given(values['token-file']) !== undefined) throw usageError('--token-file only applies with --proxy (or DEPLOY_PROXY_URL).', command);
  if (routes === undefined) {
    throw usageError(
      'No routing table given: pass --routes FILE or set PROXIMATION_ROUTES (normally <letsencrypt dir>/proximation/routes.json), ' +
        "or reach it through a proxy's admin API with --proxy URL or DEPLOY_PROXY_URL.",
      command,
    );
  }
  return fileTarget(routes, issuancePolicyFromEnv(env));
}

function proxyUrl(text: string, field: string, command: string): URL {
  const invalid = (problem: string) =>
    usageError(`Invalid ${field} ${JSON.stringify(text)}: ${problem}; give the URL of a proxy's admin listener, such as http://10.0.1.2:9180.`, command);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('it is not an absolute URL');
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
type FlagsOf<O extends ParseArgsConfig['options']> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>>['values'];

export function parseFlags<const O extends ParseArgsConfig['options']>(args: string[], options: O, command: string): FlagsOf<O> | undefined {
  const { values, positionals } = parseCommandLine(() => parseArgs({ args, options, strict: true, allowPositionals: true }), command);
  if ((values as { help?: unknown }).help === true) return undefined;
  rejectPositionals(positionals, command);
  return values;
}

/**
 * Parses a command that takes one site name and flags (`site add <site> ...`). Returns undefined for
 * --help; a missing name or a second argument is a usage error showing `usage` and `oneName`.
 */
export function parseSiteCommand<const O extends ParseArgsConfig['options']>(
  args: string[],
  options: O,
  command: string,
  usage: string,
  oneName: string,
): { values: FlagsOf<O>; site: string } | undefined {
  const { values, positionals } = parseCommandLine(() => parseArgs({ args, options, strict: true, allowPositionals: true }), command);
  if ((values as { help?: unknown }).help === true) return undefined;
  const [site, ...extra] = positionals;
  if (site === undefined) throw usageError(`Missing the site name: ${usage}.`, command);
  if (extra.length > 0) throw usageError(`Unexpected argument ${JSON.stringify(extra[0])}: ${oneName}.`, command);
  return { values, site };
}

export function rejectPositionals(positionals: readonly string[], command: string): void {
  if (positionals.length > 0) throw usageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, command);
}

/** The value of a required option; its absence is a usage error that shows an example. */
export function required(value: string | undefined, flag: string, example: string, command: string): string {
  if (value === undefined || value === '') throw usageError(`Missing ${flag}: ${example}.`, command);
  return value;
}

/** A whole number within [min, max] given as `flag`'s value. */
export function integerFlag(text: string, flag: string, min: number, max: number, command: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`Invalid ${flag} ${JSON.stringify(text)}: give a whole number from ${min} to ${max}.`, command);
  }
  return value;
}

/** A duration such as 500ms, 2s or 1m given as `flag`'s value, in milliseconds. */
export function durationFlag(text: string, flag: string, command: string): number {
  try {
    return parseDuration(text, flag);
  } catch (err) {
    if (isProximationError(err, 'ERR_INVALID_DURATION')) throw usageError(err.message, command);
    throw err;
  }
}

/** The command's output: `data` as pretty JSON with --json, else `text`. */
export function output(json: boolean | undefined, data: unknown, text: string): string {
  return json === true ? JSON.stringify(data, null, 2) : text;
}

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
