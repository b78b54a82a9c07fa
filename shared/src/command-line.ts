/**
 * The command-line conventions both CLIs (`proximation`, `deploy`) share, so that they parse, word
 * errors and exit alike:
 *
 * - `parseCommandLine` parses options strictly against a table in node:util parseArgs's format, but
 *   words every mistake itself, naming the option as typed (an unknown option gets the nearest known
 *   one as a hint; Node's own parser text never reaches the user).
 * - A mistake in the command line (unknown option, missing or malformed flag value, stray argument) is
 *   ProximationError `ERR_USAGE` from `usageError`, whose message ends with the `--help` to run.
 * - `runCommandLine` runs a command and turns what it throws into the exit code and one line on
 *   stderr, `<program>: <message>`: 2 for ERR_USAGE, 1 for every other error (the message says what
 *   failed and what to do; a refused file access names the path, the uid the process runs as and the
 *   owner it needs, see permission-hint.ts), 0 when the command returns; nothing of a failed command
 *   goes to stdout.
 *
 * Nothing here touches the process (argv, env, exit): callers pass them in, so tests run in-process.
 */
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDuration } from './duration.js';
import { ProximationError, errorMessage, isProximationError } from './errors.js';
import { permissionHint } from './permission-hint.js';

/** Which help a usage error points at: `program command --help` (`command` '' for the program's). */
export interface UsageContext {
  readonly program: string;
  readonly command: string;
}

export function usageError(context: UsageContext, message: string): ProximationError {
  const help = context.command === '' ? `${context.program} --help` : `${context.program} ${context.command} --help`;
  return new ProximationError('ERR_USAGE', `${message}\nRun "${help}" for usage.`);
}

export type OptionTable = NonNullable<ParseArgsConfig['options']>;

/** The values parseArgs gives for `O` in strict mode. */
export type FlagsOf<O extends OptionTable> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>>['values'];

/**
 * Parses `args` against `options`. Throws a usage error for an unknown option (naming the nearest
 * known one), a string option without a value (or followed by another option instead: write
 * `--flag=-x` for a value starting with "-"), and a value given to a boolean option. Everything after
 * `--` is positional. A repeated non-multiple option keeps its last value, as parseArgs does.
 */
export function parseCommandLine<const O extends OptionTable>(
  args: readonly string[],
  options: O,
  context: UsageContext,
): { values: FlagsOf<O>; positionals: string[] } {
  const { tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  const known = Object.keys(options).map((name) => `--${name}`);
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    if (option === undefined) {
      const near = nearestName(token.rawName, known);
      throw usageError(context, `Unknown option ${token.rawName}.${near === undefined ? '' : ` Did you mean ${near}?`}`);
    }
    const typed = token.rawName.startsWith('--') ? token.rawName : `${token.rawName} (--${token.name})`;
    if (option.type === 'boolean') {
      if (token.inlineValue === true) throw usageError(context, `${typed} takes no value; write it alone (got "${token.rawName}=${token.value ?? ''}").`);
      values[token.name] = true;
      continue;
    }
    if (token.value === undefined) throw usageError(context, `${typed} needs a value, such as ${typed} <value>.`);
    if (token.inlineValue !== true && token.value.startsWith('-') && token.value.length > 1) {
      throw usageError(context, `${typed} needs a value, but is followed by ${token.value}; for a value starting with "-", write ${token.rawName}=${token.value}.`);
    }
    if (option.multiple === true) values[token.name] = [...((values[token.name] as string[] | undefined) ?? []), token.value];
    else values[token.name] = token.value;
  }
  return { values: values as FlagsOf<O>, positionals };
}

/** The candidate closest to `word` by edit distance, if it is close enough to be a likely typo. */
export function nearestName(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Beyond about a third of the word, the "nearest" name is a guess that misleads more than it helps.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Warnings for environment variables that start with `prefix` but are none of `known` (a typo in a
 * task definition would otherwise silently leave the default in force), each naming the nearest
 * known variable when one is close.
 */
export function unknownVariableWarnings(env: NodeJS.ProcessEnv, prefix: string, known: readonly string[]): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith(prefix) && !known.includes(name))
    .sort()
    .map((name) => {
      const near = nearestName(name, known);
      return `${name} is set but is not a setting; it is ignored.${near === undefined ? '' : ` Did you mean ${near}?`}`;
    });
}

export function rejectPositionals(positionals: readonly string[], context: UsageContext): void {
  if (positionals.length > 0) throw usageError(context, `Unexpected argument ${JSON.stringify(positionals[0])}.`);
}

/** The value of a required option; its absence is a usage error that shows an example. */
export function required(value: string | undefined, flag: string, example: string, context: UsageContext): string {
  if (value === undefined || value === '') throw usageError(context, `Missing ${flag}: ${example}.`);
  return value;
}

/** A whole number within [min, max] given as `flag`'s value. */
export function integerFlag(text: string, flag: string, min: number, max: number, context: UsageContext): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(context, `Invalid ${flag} ${JSON.stringify(text)}: give a whole number from ${min} to ${max}.`);
  }
  return value;
}

/** A duration such as 500ms, 2s or 1m given as `flag`'s value, in milliseconds. */
export function durationFlag(text: string, flag: string, context: UsageContext): number {
  try {
    return parseDuration(text, flag);
  } catch (err) {
    if (isProximationError(err, 'ERR_INVALID_DURATION')) throw usageError(context, err.message);
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

/** The `version` of the package.json at `url` (for `--version`). */
export function packageVersion(url: URL): string {
  return String((JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown }).version);
}

/**
 * Runs `command` and returns the exit code: 0 when it resolves, after writing what it resolves to (a
 * string; a number is an exit code the command chose, having written its own output); 2 for ERR_USAGE
 * and 1 for any other error, written to `stderr` as `<program>: <message>`. An error that is not a
 * ProximationError or a system error (one with a `syscall`) is a bug: its stack goes with it.
 */
export async function runCommandLine(
  program: string,
  io: { stdout: Writable; stderr: Writable },
  command: () => Promise<string | number>,
): Promise<number> {
  try {
    const result = await command();
    if (typeof result === 'number') return result;
    io.stdout.write(result.endsWith('\n') ? result : `${result}\n`);
    return 0;
  } catch (err) {
    const denied = permissionHint(err, program);
    if (denied !== undefined) {
      io.stderr.write(`${program}: ${denied}\n`);
      return 1;
    }
    if (isProximationError(err)) {
      io.stderr.write(`${program}: ${err.message}\n`);
      return err.code === 'ERR_USAGE' ? 2 : 1;
    }
    // A system error (EADDRINUSE, EACCES, ...) says what failed; anything else is a bug, shown with its stack.
    const systemError = err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
    io.stderr.write(`${program}: ${systemError ? err.message : `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}`}\n`);
    return 1;
  }
}
