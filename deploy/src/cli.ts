/**
 * The deploy command line: `main` parses argv, runs one command and returns the exit code (0 done,
 * 1 failed, 2 usage error) instead of exiting, so tests can run it in-process. Output goes to
 * `io.stdout` (a summary, a listing, JSON with --json, or help), errors to `io.stderr` as
 * "deploy: <message>" (never JSON, and nothing on stdout).
 */
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { errorMessage, isProximationError } from '@proximation/shared';
import { usageError } from './command-line.js';
import type { Command } from './command-line.js';
import { activateCommand } from './commands/activate.js';
import { pruneCommand } from './commands/prune.js';
import { registerCommand } from './commands/register.js';
import { removeCommand } from './commands/remove.js';
import { rollbackCommand } from './commands/rollback.js';
import { siteAddCommand } from './commands/site-add.js';
import { siteHstsCommand } from './commands/site-hsts.js';
import { sitePreviewCommand } from './commands/site-preview.js';
import { siteListCommand } from './commands/site-list.js';
import { siteRemoveCommand } from './commands/site-remove.js';
import { versionsCommand } from './commands/versions.js';

const COMMANDS: readonly Command[] = [
  siteAddCommand,
  siteRemoveCommand,
  siteListCommand,
  siteHstsCommand,
  sitePreviewCommand,
  registerCommand,
  activateCommand,
  rollbackCommand,
  versionsCommand,
  removeCommand,
  pruneCommand,
];

const HELP = `Usage: deploy <command> [options]

Registers versions of sites in proximation's routing table (routes.json, normally
<letsencrypt dir>/proximation/routes.json), which the proxies sharing that directory follow,
either directly in the file or through a proxy's admin API.

Commands:
${commandList(COMMANDS)}

Options:
  -h, --help     show this help; "deploy <command> --help" shows a command's options
  --version      print the version of deploy

Every command takes --routes FILE (default $PROXIMATION_ROUTES), or instead --proxy URL with
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
  io: { stdout: Writable; stderr: Writable } = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  try {
    io.stdout.write(`${await run(argv, env)}\n`);
    return 0;
  } catch (err) {
    if (isProximationError(err)) {
      io.stderr.write(`deploy: ${err.message}\n`);
      return err.code === 'ERR_USAGE' ? 2 : 1;
    }
    io.stderr.write(`deploy: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}\n`);
    return 1;
  }
}

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const [first, second] = argv;
  if (first === undefined) throw usageError('No command given.', '');
  if (isHelp(first)) return HELP;
  if (first === '--version') return packageVersion();
  for (const command of COMMANDS) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) return command.run(argv.slice(words.length), env);
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

async function packageVersion(): Promise<string> {
  const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}
