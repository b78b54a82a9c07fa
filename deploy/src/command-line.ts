/**
 * What every deploy command shares: usage errors, strict option parsing, flag values (integers,
 * durations), where the routing table is reached, and text or --json output.
 *
 * Usage errors are ProximationError `ERR_USAGE` (the CLI exits with 2 for them, 1 for every other
 * error); their message says what to type instead and points at the command's --help. A flag value
 * that cannot be parsed (a duration, a number) is a usage error; a value the routing table rejects (a
 * site name, an upstream URL) is not, it fails the command with the table's error.
 */
import { ProximationError, isProximationError, parseDuration } from '@proximation/shared';
import { fileTarget } from './file-target.js';
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
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_OPTIONS_HELP = `  --routes FILE          the routing table file (default: $PROXIMATION_ROUTES)
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

/** The routing table named by --routes, else $PROXIMATION_ROUTES; neither is a usage error saying how to set one. */
export function openRoutesTarget(values: { routes?: string | undefined }, env: NodeJS.ProcessEnv, command: string): RoutesTarget {
  const path = values.routes !== undefined && values.routes !== '' ? values.routes : env.PROXIMATION_ROUTES;
  if (path === undefined || path === '') {
    throw usageError(
      'No routing table given: pass --routes FILE or set PROXIMATION_ROUTES (normally <letsencrypt dir>/proximation/routes.json).',
      command,
    );
  }
  return fileTarget(path);
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
