/**
 * `proximation <command>`: parse, run, return an exit code. The bin entry only calls `main` and sets the
 * exit code, so every command is tested in-process as well as as a real process.
 *
 *   serve     run the proxy until SIGTERM/SIGINT (or `signal`), then drain
 *   demo      serve on the embedded default: local CA, state in ./.proximation-demo, high ports, an
 *             example site routed to a small example upstream; its ports are checked before its
 *             routing table is written, so a second demo leaves a running one alone
 *   ca-cert   print the local CA's root certificate (PEM), for `curl --cacert`
 *   renew     renew what is due once and exit (for cron); see renew.ts
 *   certs     list every routed name and every certificate in the store (`--json` for a machine)
 *   status    the fleet from the shared directory, as GET /api/status (`--json`)
 *
 * `ca-cert`, `certs` and `renew` act on an existing proxy's state: a letsencrypt directory that is not
 * one fails them, naming the path and where it came from (state-directory.ts), before anything is
 * read or written; `renew` also needs the routing table. `ca-cert` and `certs` never write.
 *
 * Each command is one entry of COMMANDS (its help and its own options; every command also takes the
 * settings' flags), parsed and reported as both CLIs do (command-line.ts in @proximation/shared): a
 * mistake is named as typed, with the --help to run. Exit codes: 0 done, 1 failed (the message says why
 * and what to do), 2 usage error, including a malformed flag value. Unknown PROXIMATION_* variables are
 * warned about on stderr before a command runs.
 */
import path from 'node:path';
import type { Writable } from 'node:stream';
import {
  ProximationError,
  addSite,
  certificateNames,
  checkRedisKeyPrefix,
  checkStorageSetting,
  copyStorage,
  durationFlag,
  openStorage,
  plural,
  readRoutingTable,
  readRoutingTableFile,
  required,
  setSitePreview,
  errorMessage,
  isProximationError,
  nearestName,
  packageVersion,
  parseCommandLine,
  registerVersion,
  rejectPositionals,
  runCommandLine,
  unknownVariableWarnings,
  updateRoutingTable,
  usageError,
  type OptionTable,
  formatFleetStatus,
  readFleetStatus,
  openStorageSetting,
} from '@proximation/shared';
import { CertStore } from './certs/cert-store.js';
import { certificatesReport, formatCertificatesReport, type LineageReport } from './certs-report.js';
import { openStateStorage, routesLocation } from './state-storage.js';
import { SETTINGS, loadConfig, settingOrigin, settingsArgOptions, settingsHelp, type Config } from './config.js';
import { requireStateDirectory } from './state-directory.js';
import { startExampleUpstream } from './demo/example-upstream.js';
import { requirePortsFree } from './demo/ports-free.js';
import { createLogger } from './logger.js';
import { renewCertificates, type RenewRequest } from './renew.js';
import { releaseMemoryWhenIdle } from './memory-release.js';
import { startPrimary } from './cluster/primary.js';
import type { SettingsSources } from './cluster/messages.js';
import { startServer, type RunningServer } from './server.js';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** Stops `serve`/`demo` like SIGTERM does; the real process uses the signals themselves. */
  signal?: AbortSignal;
}

const PROGRAM = 'proximation';
const VERSION = packageVersion(new URL('../package.json', import.meta.url));

/** One command: its help, its own options (every command also takes the settings' flags). */
interface CommandSpec {
  readonly summary: string;
  readonly description: string;
  readonly options: OptionTable;
  readonly optionsHelp: string;
  /** The settings the command reads, shown in its help; 'all' for the proxy itself. */
  readonly settings: 'all' | readonly (keyof Config)[];
}

const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  serve: {
    summary: 'run the proxy (default settings come from PROXIMATION_* variables)',
    description: 'Runs the proxy until SIGTERM or SIGINT, then drains in-flight requests and exits 0.',
    options: {},
    optionsHelp: '',
    settings: 'all',
  },
  demo: {
    summary: 'run on an embedded default: local CA, state in ./.proximation-demo,\n             ports 8080/8443/8081, and an example site at https://localhost:8443/',
    description: 'Serves an example site at https://localhost:8443/ from a small example upstream, with\ncertificates from the local CA and its state in ./.proximation-demo (the settings override these).',
    options: {},
    optionsHelp: '',
    settings: 'all',
  },
  'ca-cert': {
    summary: "print the local CA's root certificate in PEM (for curl --cacert)",
    description: "Prints the local CA's root certificate (PEM), for curl --cacert or a trust store. It creates\nnothing: a directory without a local CA fails, saying why.",
    options: {},
    optionsHelp: '',
    settings: ['letsencryptDir'],
  },
  renew: {
    summary: "renew the routed names' certificates that are due, once, and exit:\n             0 when all succeeded or nothing was due, 1 when any failed",
    description: "Renews the routed names' certificates that are due, once, and exits: 0 when all succeeded or\nnothing was due, 1 when any failed (for cron or a scheduled task).",
    options: {
      'force-renewal': { type: 'boolean' },
      'cert-name': { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      'random-delay': { type: 'string' },
      'deploy-hook': { type: 'string' },
    },
    optionsHelp: `  --force-renewal         renew even when not due (and despite the backoff)
  --cert-name NAME        only this name (repeatable)
  --dry-run               order from the CA but store nothing
  --random-delay DURATION first sleep a random time below this (e.g. 1h, for cron)
  --deploy-hook CMD       run by /bin/sh after each renewal, with RENEWED_LINEAGE
                          and RENEWED_DOMAINS set as certbot does`,
    settings: 'all',
  },
  certs: {
    summary: 'list every routed name and certificate: issuer, expiry, next renewal, last error',
    description: 'Lists every name the routing table routes, with or without a certificate, and every certificate\nin the store: names, issuer, expiry, next renewal (or next attempt after failures) and last error;\na certificate no site routes any more is marked so.',
    options: { json: { type: 'boolean' } },
    optionsHelp: '  --json                  as JSON',
    settings: ['letsencryptDir', 'routesPath'],
  },
  status: {
    summary: 'show the fleet: live instances, sites, versions, members, leases, requests in flight',
    description:
      'Shows the fleet from the shared directory: each live instance (id, age, generation, requests in flight), then each site\'s versions with their members (lease age, in flight, last request); the same as GET /api/status.',
    options: { json: { type: 'boolean' } },
    optionsHelp: '  --json                  as JSON (the GET /api/status document)',
    settings: ['letsencryptDir', 'routesPath'],
  },
  storage: {
    summary: 'storage copy --from <dir|redis-url> --to <dir|redis-url>: copy all shared state\n             (idempotent, verified, refused onto a newer routing table)',
    description:
      'Copies every key (routing table, certificates, account, challenges, backoff state) from one storage to\nanother, directory or Redis, and reads each written key back. A second run copies nothing; a target\nwhose routing table has a higher generation is refused with nothing written.',
    options: { from: { type: 'string' }, to: { type: 'string' }, prefix: { type: 'string' } },
    optionsHelp: `  --from DIR|URL          the storage to copy from (a directory, redis:// or rediss://)
  --to DIR|URL            the storage to copy to
  --prefix P              Redis key prefix of both (default proximation:)`,
    settings: [],
  },
};

const GLOBAL_OPTIONS = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } } as const;

const USAGE = `Usage: proximation <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)}  ${c.summary}${c.optionsHelp === '' ? '' : `\n${c.optionsHelp.replace(/^ {2}/gm, '               ')}`}`)
  .join('\n')}

"proximation <command> --help" (or "proximation help <command>") shows one command's options.

Options (each also read from its environment variable):
${settingsHelp()}
  -h, --help, --version

Exit status: 0 done, 1 failed (the message says why and what to do), 2 usage error (including a
malformed flag value; a malformed PROXIMATION_* variable is 1).
`;

function commandHelp(name: string, spec: CommandSpec): string {
  const settings = spec.settings === 'all' ? settingsHelp() : settingsHelp(spec.settings);
  const note = spec.settings === 'all' ? '' : '\nThe other settings of "proximation --help" are accepted too.';
  return (
    `Usage: proximation ${name} [options]\n\n${spec.description}\n\n` +
    (spec.optionsHelp === '' ? '' : `Options:\n${spec.optionsHelp}\n\n`) +
    `Settings (each also read from its environment variable):\n${settings}\n  -h, --help${note}\n`
  );
}

const DEMO_DEFAULTS: Partial<Record<keyof Config, string>> = {
  httpPort: '8080',
  httpsPort: '8443',
  adminPort: '8081',
  letsencryptDir: '.proximation-demo',
  issuer: 'local',
};

type Values = Record<string, string | boolean | string[] | undefined>;

interface Parsed {
  command: string | undefined;
  values: Values;
  /** The help to print instead of running (for --help and "help <command>"). */
  help?: string;
}

/**
 * The command is the first argument that is not an option; the options are parsed against that
 * command's table (its own options, the settings' flags, --help), so an option of another command
 * is named as such.
 */
function parse(argv: string[]): Parsed {
  const first = commandIndex(argv);
  const name = first === -1 ? undefined : argv[first];
  if (name === 'help') {
    const topic = argv[first + 1];
    if (topic === undefined) return { command: undefined, values: {}, help: USAGE };
    const spec = COMMANDS[topic];
    if (spec === undefined) throw unknownCommand(topic);
    return { command: topic, values: {}, help: commandHelp(topic, spec) };
  }
  if (name !== undefined && COMMANDS[name] === undefined) {
    // A value of a misplaced option ("proximation --http-port 80 serve") is not a command either.
    throw unknownCommand(name);
  }
  const spec = name === undefined ? undefined : COMMANDS[name];
  const context = { program: PROGRAM, command: name ?? '' };
  const options = { ...settingsArgOptions(), ...(spec?.options ?? {}), ...GLOBAL_OPTIONS };
  // "storage" has one subcommand, "copy": the word after it.
  const words = name === 'storage' && argv[first + 1] === 'copy' ? 2 : 1;
  if (name === 'storage' && words === 1) throw usageError({ program: PROGRAM, command: 'storage' }, 'Use "proximation storage copy --from <dir|url> --to <dir|url>".');
  const rest = first === -1 ? argv : [...argv.slice(0, first), ...argv.slice(first + words)];
  let parsed;
  try {
    parsed = parseCommandLine(rest, options, context);
  } catch (err) {
    throw name === undefined ? err : withOtherCommand(err, rest);
  }
  const { values, positionals } = parsed;
  if (values.version === true) return { command: name, values };
  if (values.help === true) return { command: name, values, help: spec === undefined || name === undefined ? USAGE : commandHelp(name, spec) };
  rejectPositionals(positionals, context);
  if (name === undefined) throw usageError(context, 'No command given.');
  return { command: name, values };
}

/** Where the command word is: the first argument that is neither an option nor an option's value. */
function commandIndex(argv: readonly string[]): number {
  const takesValue = new Set(
    [settingsArgOptions(), ...Object.values(COMMANDS).map((c) => c.options)].flatMap((table) =>
      Object.entries(table).flatMap(([flag, option]) => (option.type === 'string' ? [`--${flag}`] : [])),
    ),
  );
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (!arg.startsWith('-')) return i;
    if (takesValue.has(arg)) i++;
  }
  return -1;
}

function unknownCommand(name: string): Error {
  const near = nearestName(name, Object.keys(COMMANDS));
  return usageError({ program: PROGRAM, command: '' }, `Unknown command ${JSON.stringify(name)}.${near === undefined ? '' : ` Did you mean ${near}?`}`);
}

/** An unknown option that belongs to another command says so, instead of suggesting a near name. */
function withOtherCommand(err: unknown, args: readonly string[]): unknown {
  for (const [other, spec] of Object.entries(COMMANDS)) {
    const flag = Object.keys(spec.options).find((option) => args.some((arg) => arg === `--${option}` || arg.startsWith(`--${option}=`)));
    if (flag !== undefined && isProximationError(err, 'ERR_USAGE') && err.message.startsWith(`Unknown option --${flag}`)) {
      return usageError({ program: PROGRAM, command: other }, `--${flag} is an option of "proximation ${other}" only.`);
    }
  }
  return err;
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  return runCommandLine(PROGRAM, io, async () => {
    const { command, values, help } = parse(argv);
    if (values.version === true) return `${PROGRAM} ${VERSION}`;
    if (help !== undefined) return help;
    for (const warning of unknownVariableWarnings(io.env, 'PROXIMATION_', SETTINGS.map((s) => s.env))) io.stderr.write(`${PROGRAM}: warning: ${warning}\n`);
    switch (command) {
      case 'serve':
        return await serve(loadConfig(values, io.env), { values, env: io.env, overrides: {} }, io);
      case 'demo':
        return await demo(loadConfig(values, io.env, DEMO_DEFAULTS), { values, env: io.env, overrides: DEMO_DEFAULTS }, io);
      case 'ca-cert':
        return await caCert(values, io);
      case 'renew': {
        // Flags first: a malformed one is a usage error (2), whatever the directory.
        const request = renewRequest(values);
        const config = await stateConfig(values, io);
        return await renew(config, request, io, settingOrigin(config.storage.backend === 'file' ? 'routesPath' : 'storage', values, io.env));
      }
      case 'status': {
        const config = loadConfig(values, io.env);
        // The storage alone: the status reads no certificate, so the certbot copy stays as it is.
        const storage = await openStorageSetting(config.storage);
        const { status, problems } = await readFleetStatus(routesLocation(config, storage)).finally(() => storage.close());
        for (const problem of problems) io.stderr.write(`${PROGRAM}: warning: ${problem}\n`);
        io.stdout.write(values.json === true ? `${JSON.stringify(status, null, 2)}\n` : `${formatFleetStatus(status)}\n`);
        return 0;
      }
      case 'storage':
        return await storageCopy(values, io);
      case 'certs':
        return await certs(await stateConfig(values, io), values, io);
      default:
        throw unknownCommand(String(command));
    }
  });
}

async function storageCopy(values: Values, io: CliIo): Promise<number> {
  const context = { program: PROGRAM, command: 'storage' };
  const str = (value: Values[string]): string | undefined => (typeof value === 'string' ? value : undefined);
  // A malformed flag value is a usage error (exit 2), as everywhere: checked before anything connects.
  const flag = <T>(check: () => T): T => {
    try {
      return check();
    } catch (err) {
      throw isProximationError(err) ? usageError(context, err.message) : err;
    }
  };
  const prefix = flag(() => (values.prefix === undefined ? undefined : checkRedisKeyPrefix(str(values.prefix) ?? '', '--prefix')));
  const fromSetting = required(str(values.from), '--from', 'the storage to copy from, a directory or redis://host:port', context);
  const toSetting = required(str(values.to), '--to', 'the storage to copy to, a directory or redis://host:port', context);
  flag(() => [checkStorageSetting(fromSetting, '--from'), checkStorageSetting(toSetting, '--to')]);
  const from = await openStorage(fromSetting, { keyPrefix: prefix, what: '--from' });
  try {
    const to = await openStorage(toSetting, { keyPrefix: prefix, what: '--to' });
    try {
      const result = await copyStorage(from, to);
      io.stdout.write(`Copied ${plural(result.copied.length, 'key')} from ${from.location} to ${to.location}, ${result.unchanged.length} already equal; all read back and verified.\n`);
      return 0;
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

/** The settings of a command that reads a proxy's state, once the directory is known to be one (state-directory.ts). */
async function stateConfig(values: Values, io: CliIo): Promise<Config> {
  const config = loadConfig(values, io.env);
  // On Redis there is no directory to mistype: connecting is the check.
  if (config.storage.backend === 'file') await requireStateDirectory(config.letsencryptDir, settingOrigin('letsencryptDir', values, io.env));
  return config;
}

/** Prints the local CA's root as the proxies on the directory use it; creates nothing (no CA, no directory). */
async function caCert(values: Values, io: CliIo): Promise<number> {
  const config = await stateConfig(values, io);
  const dir = config.letsencryptDir;
  // Loaded only by the commands that use the local CA: its X.509 stack is the CLI's largest module graph.
  const { localCaRootPath } = await import('./certs/local-issuer.js');
  const root = config.storage.backend === 'file' ? localCaRootPath(dir) : `proximation/local-ca/root.pem in ${config.storage.location}`;
  const storage = await openStateStorage(config);
  const [pem, acme] = await Promise.all([storage.read('proximation/local-ca/root.pem'), storage.list('accounts').then((keys: string[]) => keys.length > 0)]).finally(() => storage.close());
  if (pem === undefined) {
    throw new ProximationError(
      'ERR_NO_LOCAL_CA',
      acme
        ? `${dir} (${settingOrigin('letsencryptDir', values, io.env)}) holds ACME accounts: its certificates come from the ACME CA, whose root the CA publishes; there is no local CA to print.`
        : `There is no local CA at ${root} (${settingOrigin('letsencryptDir', values, io.env)}): it is created when a proxy with the local issuer (PROXIMATION_ISSUER=local, the default) first starts on ${dir}. Start it, or point PROXIMATION_LETSENCRYPT_DIR at the directory the proxy uses.`,
    );
  }
  io.stdout.write(pem);
  return 0;
}

async function certs(config: Config, values: Values, io: CliIo): Promise<number> {
  let routesProblem: string | undefined;
  let hosts: string[] | undefined;
  const storage = await openStateStorage(config);
  let reports: LineageReport[];
  try {
    const routes = routesLocation(config, storage);
    if ((await routes.storage.read(routes.key)) === undefined) routesProblem = `not found, ${settingOrigin('routesPath', values, io.env)}`;
    else {
      try {
        hosts = (await readRoutingTable(routes.storage, routes.key)).sites.flatMap(certificateNames);
      } catch (err) {
        routesProblem = `unusable: ${errorMessage(err)}`;
      }
    }
    reports = await certificatesReport(new CertStore(config.letsencryptDir, storage), hosts, new Date());
  } finally {
    await storage.close();
  }
  io.stdout.write(
    values.json === true
      ? `${JSON.stringify(reports, null, 2)}\n`
      : formatCertificatesReport(reports, { letsencryptDir: config.letsencryptDir, routesPath: config.routesPath, routesProblem }),
  );
  return 0;
}

function renewRequest(values: Values): RenewRequest {
  const randomDelay = values['random-delay'];
  return {
    force: values['force-renewal'] === true,
    dryRun: values['dry-run'] === true,
    certNames: Array.isArray(values['cert-name']) ? values['cert-name'] : [],
    randomDelayMs: typeof randomDelay === 'string' ? durationFlag(randomDelay, '--random-delay', { program: PROGRAM, command: 'renew' }) : 0,
    deployHook: typeof values['deploy-hook'] === 'string' ? values['deploy-hook'] : undefined,
  };
}

async function renew(config: Config, request: RenewRequest, io: CliIo, routesOrigin: string): Promise<number> {
  // Logs go to stderr: stdout is the per-name summary cron mails.
  const log = createLogger({ level: config.logLevel, format: config.logFormat, destination: io.stderr });
  try {
    return await renewCertificates(config, request, log, { out: io.stdout, hookOutput: io.stderr, env: io.env, routesOrigin });
  } finally {
    log.flush();
  }
}

/** Resolves on SIGTERM, SIGINT or the abort of `signal`, whichever comes first. */
function stopRequested(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string): void => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(why);
    };
    const onTerm = (): void => done('SIGTERM');
    const onInt = (): void => done('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (signal?.aborted) done('abort');
    signal?.addEventListener('abort', () => done('abort'), { once: true });
  });
}

/** `settings`: what `config` was loaded from, for the worker processes to load the same. */
async function serve(config: Config, settings: SettingsSources, io: CliIo, onStarted?: (server: RunningServer) => void): Promise<number> {
  const log = createLogger({ level: config.logLevel, format: config.logFormat, destination: io.stdout === process.stdout ? undefined : io.stdout });
  const stopMemoryRelease = releaseMemoryWhenIdle(log.child({ part: 'memory' }));
  try {
    const server = config.workers > 1 ? await startPrimary(config, log, settings) : await startServer(config, log);
    onStarted?.(server);
    try {
      // A primary whose workers keep dying fails: the rest is drained and the error printed (exit 1).
      const why = await Promise.race([stopRequested(io.signal), server.failed]);
      log.info({ signal: why }, 'shutdown requested');
    } finally {
      await server.close();
    }
    return 0;
  } finally {
    stopMemoryRelease();
    log.flush();
  }
}

async function demo(config: Config, settings: SettingsSources, io: CliIo): Promise<number> {
  const { localCaRootPath } = await import('./certs/local-issuer.js');
  // Before anything is written: a second demo must leave the running one's table alone.
  await requirePortsFree([
    { port: config.httpPort, host: config.listenAddress, setting: 'PROXIMATION_HTTP_PORT' },
    { port: config.httpsPort, host: config.listenAddress, setting: 'PROXIMATION_HTTPS_PORT' },
    { port: config.adminPort, host: config.adminAddress, setting: 'PROXIMATION_ADMIN_PORT' },
  ]);
  const upstream = await startExampleUpstream();
  try {
    // Through the storage the proxy reads (a directory or Redis), as deploy would write it.
    const storage = await openStorageSetting(config.storage);
    try {
      const routes = routesLocation(config, storage);
      await updateRoutingTable(routes.storage, routes.key, (table) => {
        // Preview hosts too: curl resolves every *.localhost name to the loopback address.
        const withSite = setSitePreview(addSite(table, { name: 'example', hosts: ['localhost'] }), 'example', { domain: 'preview.localhost' });
        return registerVersion(withSite, { site: 'example', version: 'demo', upstreams: [upstream.origin], registeredAt: new Date(), activate: true, replace: true });
      });
    } finally {
      await storage.close();
    }
    return await serve(config, settings, io, (server) => {
      // On Redis the local CA's root is in Redis: ca-cert prints it.
      const onFiles = config.storage.backend === 'file';
      const ca = onFiles ? path.relative(process.cwd(), localCaRootPath(config.letsencryptDir)) || '.' : 'ca.pem';
      io.stderr.write(
        `\nproximation demo is running: site "example" at localhost, routed to ${upstream.origin}.\n` +
          `Try:\n${onFiles ? '' : `  ${PROGRAM} ca-cert > ca.pem\n`}  curl --cacert ${ca} https://localhost:${server.https.port}/\n` +
          `  curl --cacert ${ca} https://demo.preview.localhost:${server.https.port}/   (version "demo" at its preview host)\n` +
          `  curl -i http://localhost:${server.http.port}/          (redirects to HTTPS)\n` +
          `  curl http://127.0.0.1:${server.admin.port}/healthz\nStop with Ctrl-C.\n\n`,
      );
    });
  } finally {
    await upstream.close();
  }
}
