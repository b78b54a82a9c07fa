/**
 * The deploy command line: `main` parses argv, runs one command and returns the exit code (0 done,
 * 1 failed, 2 usage error) instead of exiting, so tests can run it in-process. Output goes to
 * `io.stdout` (a summary, a listing, JSON with --json, or help), errors to `io.stderr` as
 * "deploy: <message>" (never JSON, and nothing on stdout). Commands that ask for confirmation ask on
 * `io.stderr` when `io.stdin` is a terminal (see confirm.ts).
 */
import type { Writable } from 'node:stream';
import { runCommandLine } from '@proximation/shared';
import { usageError, withCommandScope } from './command-line.js';
import type { Command } from './command-line.js';
import type { CommandIo } from './confirm.js';
import { activateCommand } from './commands/activate.js';
import { deregisterCommand } from './commands/deregister.js';
import { statusCommand } from './commands/status.js';
import { waitDrainedCommand } from './commands/wait-drained.js';
import { pruneCommand } from './commands/prune.js';
import { registerCommand } from './commands/register.js';
import { runCommand } from './commands/run.js';
import { removeCommand } from './commands/remove.js';
import { rollbackCommand } from './commands/rollback.js';
import { siteAddCommand } from './commands/site-add.js';
import { siteHstsCommand } from './commands/site-hsts.js';
import { sitePreviewCommand } from './commands/site-preview.js';
import { siteListCommand } from './commands/site-list.js';
import { siteRemoveCommand } from './commands/site-remove.js';
import { versionsCommand } from './commands/versions.js';
import { deployVersion } from './version.js';

const COMMANDS: readonly Command[] = [
  siteAddCommand,
  siteRemoveCommand,
  siteListCommand,
  siteHstsCommand,
  sitePreviewCommand,
  registerCommand,
  runCommand,
  deregisterCommand,
  activateCommand,
  rollbackCommand,
  versionsCommand,
  statusCommand,
  waitDrainedCommand,
  removeCommand,
  pruneCommand,
];

const HELP = `Usage: deploy <command> [options]

Registers versions of sites in proximation's routing table (routes.json, normally
<letsencrypt dir>/proximation/routes.json), which the proxies sharing that directory follow,
either directly in the file (or the proxies' Redis) or through a proxy's admin API.

Commands:
${commandList(COMMANDS)}

Options:
  -h, --help     show this help; "deploy <command> --help" (or "deploy help <command>")
                 shows a command's options
  --version      print the version of deploy

Every command takes --routes FILE (default $PROXIMATION_ROUTES, else the table in
$PROXIMATION_LETSENCRYPT_DIR as proximation finds it), or instead --storage DIR|URL (the
proxies' storage, a directory or Redis; default $PROXIMATION_STORAGE), or --proxy URL with
--token-file FILE (default $DEPLOY_PROXY_URL with the token in $DEPLOY_TOKEN); commands that list
or report something take --json. Durations are written like 500ms, 2s, 1m.

Exit status: 0 done, 1 failed (the message says why and what to do), 2 usage error.`;

function commandList(commands: readonly Command[]): string {
  return commands.map((c) => `  ${c.synopsis}\n      ${c.summary}`).join('\n');
}

const isHelp = (arg: string | undefined): boolean => arg === '--help' || arg === '-h';

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: CommandIo & { stdout: Writable } = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
): Promise<number> {
  return runCommandLine('deploy', io, () => withCommandScope(() => run(argv, env, io)));
}

async function run(argv: string[], env: NodeJS.ProcessEnv, io: CommandIo | undefined): Promise<string | number> {
  const [first, second] = argv;
  if (first === undefined) throw usageError('No command given.', '');
  if (isHelp(first)) return HELP;
  if (first === '--version') return `deploy ${deployVersion()}`;
  // "deploy help <command...>" is "deploy <command...> --help".
  if (first === 'help') return argv.length === 1 ? HELP : run([...argv.slice(1), '--help'], env, io);
  for (const command of COMMANDS) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) return command.run(argv.slice(words.length), env, io);
  }
  const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
  if (group.length > 0) {
    if (isHelp(second)) return `Commands:\n${commandList(group)}`;
    const choices = group.map((c) => c.name).join(', ');
    throw usageError(second === undefined ? `"deploy ${first}" needs a subcommand: ${choices}.` : `Unknown command "${first} ${second}"; try ${choices}.`, '');
  }
  const hint = first.startsWith('-') ? ' The command comes first, then its options.' : '';
  throw usageError(`Unknown command ${JSON.stringify(first)}.${hint}`, '');
}
