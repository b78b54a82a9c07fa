/**
 * What every deploy command shares: usage errors, strict option parsing and the routing table location.
 *
 * Usage errors are ProximationError `ERR_USAGE` (the CLI exits with 2 for them, 1 for every other
 * error); their message says what to type instead and points at the command's --help.
 */
import { ProximationError } from '@proximation/shared';

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

export const COMMON_OPTIONS_HELP = `  --routes FILE        the routing table file (default: $PROXIMATION_ROUTES)
  -h, --help           show this help`;

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

/** --routes, else $PROXIMATION_ROUTES; neither is a usage error saying how to set one. */
export function routesFile(flag: string | undefined, env: NodeJS.ProcessEnv, command: string): string {
  const path = flag !== undefined && flag !== '' ? flag : env.PROXIMATION_ROUTES;
  if (path === undefined || path === '') {
    throw usageError(
      'No routing table given: pass --routes FILE or set PROXIMATION_ROUTES (normally <letsencrypt dir>/proximation/routes.json).',
      command,
    );
  }
  return path;
}

export function rejectPositionals(positionals: readonly string[], command: string): void {
  if (positionals.length > 0) throw usageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, command);
}

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
