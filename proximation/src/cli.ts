/**
 * `proximation <command>`: parse, run, return an exit code. The bin entry only calls `main` and sets the
 * exit code, so every command is tested in-process as well as as a real process.
 *
 *   serve     run the proxy until SIGTERM/SIGINT (or `signal`), then drain
 *   demo      serve on the embedded default: local CA, state in ./.proximation-demo, high ports, an
 *             example site routed to a small example upstream
 *   ca-cert   print the local CA's root certificate (PEM), for `curl --cacert`
 *   renew     renew what is due once and exit (for cron); see renew.ts
 *   certs     list the certificates in the store (`--json` for a machine)
 *
 * Exit codes: 0 done, 1 failed (the message says why), 2 usage error.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import {
  addSite,
  setSitePreview,
  errorMessage,
  isProximationError,
  parseDuration,
  registerVersion,
  updateRoutingTableFile,
} from '@proximation/shared';
import { certificatesReport, formatCertificatesReport } from './certs-report.js';
import { loadConfig, settingsArgOptions, settingsHelp, type Config } from './config.js';
import { startExampleUpstream } from './demo/example-upstream.js';
import { createLogger } from './logger.js';
import { renewCertificates } from './renew.js';
import { DEFAULT_MEMORY_RELEASE, startMemoryRelease } from './memory-release.js';
import { startServer } from './server.js';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** Stops `serve`/`demo` like SIGTERM does; the real process uses the signals themselves. */
  signal?: AbortSignal;
}

const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `Usage: proximation <command> [options]

Commands:
  serve      run the proxy (default settings come from PROXIMATION_* variables)
  demo       run on an embedded default: local CA, state in ./.proximation-demo,
             ports 8080/8443/8081, and an example site at https://localhost:8443/
  ca-cert    print the local CA's root certificate in PEM (for curl --cacert)
  renew      renew the routed names' certificates that are due, once, and exit:
             0 when all succeeded or nothing was due, 1 when any failed
               --force-renewal         renew even when not due (and despite the backoff)
               --cert-name NAME        only this name (repeatable)
               --dry-run               order from the CA but store nothing
               --random-delay DURATION first sleep a random time below this (e.g. 1h, for cron)
               --deploy-hook CMD       run by /bin/sh after each renewal, with RENEWED_LINEAGE
                                       and RENEWED_DOMAINS set as certbot does
  certs      list the certificates: names, issuer, expiry, next renewal, last error
               --json                  as JSON

Options (each also read from its environment variable):
${settingsHelp()}
  --help, --version
`;

class UsageError extends Error {}

const DEMO_DEFAULTS: Partial<Record<keyof Config, string>> = {
  httpPort: '8080',
  httpsPort: '8443',
  adminPort: '8081',
  letsencryptDir: '.proximation-demo',
  issuer: 'local',
};

/** Flags that belong to one command, not to the settings. */
const COMMAND_OPTIONS = {
  'force-renewal': { type: 'boolean', command: 'renew' },
  'cert-name': { type: 'string', multiple: true, command: 'renew' },
  'dry-run': { type: 'boolean', command: 'renew' },
  'random-delay': { type: 'string', command: 'renew' },
  'deploy-hook': { type: 'string', command: 'renew' },
  json: { type: 'boolean', command: 'certs' },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[]): { command: string | undefined; values: Values } {
  try {
    const commandOptions = Object.fromEntries(Object.entries(COMMAND_OPTIONS).map(([flag, { type, ...rest }]) => [flag, { type, ...('multiple' in rest ? { multiple: true } : {}) }]));
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...settingsArgOptions(), ...commandOptions, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
    for (const [flag, { command }] of Object.entries(COMMAND_OPTIONS)) {
      if ((values as Values)[flag] !== undefined && positionals[0] !== command) throw new UsageError(`--${flag} is an option of "proximation ${command}" only`);
    }
    return { command: positionals[0], values: values as Values };
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(errorMessage(err));
  }
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  try {
    const { command, values } = parse(argv);
    if (values.version === true) {
      io.stdout.write(`proximation ${VERSION}\n`);
      return 0;
    }
    if (values.help === true || command === 'help') {
      io.stdout.write(USAGE);
      return 0;
    }
    switch (command) {
      case 'serve':
        return await serve(loadConfig(values, io.env), io);
      case 'demo':
        return await demo(loadConfig(values, io.env, DEMO_DEFAULTS), io);
      case 'ca-cert': {
        // Loaded only by the commands that use the local CA: its X.509 stack is the CLI's largest module graph.
        const { openLocalIssuer } = await import('./certs/local-issuer.js');
        io.stdout.write((await openLocalIssuer(loadConfig(values, io.env).letsencryptDir)).ca.rootPem);
        return 0;
      }
      case 'renew':
        return await renew(loadConfig(values, io.env), values, io);
      case 'certs': {
        const reports = await certificatesReport(loadConfig(values, io.env).letsencryptDir, new Date());
        io.stdout.write(values.json === true ? `${JSON.stringify(reports, null, 2)}\n` : formatCertificatesReport(reports));
        return 0;
      }
      case undefined:
        throw new UsageError('no command given');
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`proximation: ${err.message}. Run "proximation --help" for usage.\n`);
      return 2;
    }
    io.stderr.write(`proximation: ${isProximationError(err) ? err.message : errorMessage(err)}\n`);
    return 1;
  }
}

async function renew(config: Config, values: Values, io: CliIo): Promise<number> {
  let randomDelayMs = 0;
  if (typeof values['random-delay'] === 'string') {
    try {
      randomDelayMs = parseDuration(values['random-delay'], '--random-delay');
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
  }
  // Logs go to stderr: stdout is the per-name summary cron mails.
  const log = createLogger({ level: config.logLevel, format: config.logFormat, destination: io.stderr });
  try {
    return await renewCertificates(
      config,
      {
        force: values['force-renewal'] === true,
        dryRun: values['dry-run'] === true,
        certNames: Array.isArray(values['cert-name']) ? values['cert-name'] : [],
        randomDelayMs,
        deployHook: typeof values['deploy-hook'] === 'string' ? values['deploy-hook'] : undefined,
      },
      log,
      { out: io.stdout, hookOutput: io.stderr, env: io.env },
    );
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

async function serve(config: Config, io: CliIo, onStarted?: (server: Awaited<ReturnType<typeof startServer>>) => void): Promise<number> {
  const log = createLogger({ level: config.logLevel, format: config.logFormat, destination: io.stdout === process.stdout ? undefined : io.stdout });
  const memoryLog = log.child({ part: 'memory' });
  const stopMemoryRelease = startMemoryRelease({
    ...DEFAULT_MEMORY_RELEASE,
    onRelease: (release) => memoryLog.info({ ...release, rssBytes: process.memoryUsage.rss() }, 'idle after a burst: heap collected'),
  });
  try {
    const server = await startServer(config, log);
    onStarted?.(server);
    const why = await stopRequested(io.signal);
    log.info({ signal: why }, 'shutdown requested');
    await server.close();
    return 0;
  } finally {
    stopMemoryRelease();
    log.flush();
  }
}

async function demo(config: Config, io: CliIo): Promise<number> {
  const { localCaDir } = await import('./certs/local-issuer.js');
  const upstream = await startExampleUpstream();
  try {
    await updateRoutingTableFile(config.routesPath, (table) => {
      // Preview hosts too: curl resolves every *.localhost name to the loopback address.
      const withSite = setSitePreview(addSite(table, { name: 'example', hosts: ['localhost'] }), 'example', { domain: 'preview.localhost' });
      return registerVersion(withSite, { site: 'example', version: 'demo', upstreams: [upstream.origin], registeredAt: new Date(), activate: true, replace: true });
    });
    return await serve(config, io, (server) => {
      const ca = path.relative(process.cwd(), path.join(localCaDir(config.letsencryptDir), 'root.pem')) || '.';
      io.stderr.write(
        `\nproximation demo is running: site "example" at localhost, routed to ${upstream.origin}.\n` +
          `Try:\n  curl --cacert ${ca} https://localhost:${server.https.port}/\n` +
          `  curl --cacert ${ca} https://demo.preview.localhost:${server.https.port}/   (version "demo" at its preview host)\n` +
          `  curl -i http://localhost:${server.http.port}/          (redirects to HTTPS)\n` +
          `  curl http://127.0.0.1:${server.admin.port}/healthz\nStop with Ctrl-C.\n\n`,
      );
    });
  } finally {
    await upstream.close();
  }
}
