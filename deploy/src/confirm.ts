/**
 * Asking before a risky change (`deploy prune` that leaves nothing to roll back to, `deploy site
 * remove`), the way operators expect from a CLI: on a terminal the command asks, on stderr, and acts only
 * on "y" or "yes"; `--yes` skips the question; `--dry-run` says what would change and changes nothing.
 * Without a terminal on stdin (CI, scripts, an app's entrypoint) it acts without asking, as it always
 * did, so existing pipelines keep working.
 *
 * `confirmChange` resolves when the change may go ahead and rejects with ProximationError
 * `ERR_NOT_CONFIRMED` (exit 1, nothing changed) when the answer is anything else or stdin ends.
 */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { ProximationError } from '@proximation/shared';
import type { ProgressOutput } from './progress.js';

/** Where a command may ask a question or show progress: the process's stdin and stderr, or a test's. */
export interface CommandIo extends ProgressOutput {
  /** None: the command never asks. */
  readonly stdin?: Readable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
}

export const CONFIRM_OPTIONS = { yes: { type: 'boolean', short: 'y' }, 'dry-run': { type: 'boolean' } } as const;

export const CONFIRM_OPTIONS_HELP = `  --dry-run              say what would change, and change nothing
  -y, --yes              do not ask for confirmation on a terminal`;

/** Whether the command should ask: stdin is a terminal and --yes was not given. */
export function shouldAsk(io: CommandIo | undefined, yes: boolean | undefined): io is CommandIo & { stdin: Readable } {
  return io?.stdin?.isTTY === true && yes !== true;
}

/** Asks `question` (what will happen) with " Continue? [y/N] "; resolves on yes, rejects otherwise. */
export async function confirmChange(io: CommandIo & { stdin: Readable }, question: string, nothingChanged: string): Promise<void> {
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  const closed = new Promise<string>((resolve) => rl.once('close', () => resolve('')));
  try {
    const answer = await Promise.race([rl.question(`${question} Continue? [y/N] `), closed]);
    if (/^\s*y(es)?\s*$/i.test(answer)) return;
  } finally {
    rl.close();
  }
  throw new ProximationError('ERR_NOT_CONFIRMED', `Not confirmed; ${nothingChanged}. Pass --yes to skip the question, or --dry-run to see what would change.`);
}
