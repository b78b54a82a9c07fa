/**
 * `proximation renew`: one pass over the routed names, for cron. Each name (or each `--cert-name`) is
 * renewed when due, or always with `force`, through CertificateManager.renew: the per-name lock and the
 * re-read under it make it safe on every instance at once (one orders, the others find it done), and the
 * shared backoff keeps a failing name from being ordered before its time (unless forced).
 *
 * Guarantees:
 * - Only names in the routing table are renewed; a `--cert-name` that is not routed is refused
 *   (ERR_RENEW_NAME_NOT_ROUTED) before anything is ordered.
 * - `dryRun` orders from the configured CA but stores nothing (no lineage, renewal file, backoff state).
 * - After each successful renewal done here (not one a peer did, not a dry run) the deploy hook runs via
 *   /bin/sh with RENEWED_LINEAGE (the live directory) and RENEWED_DOMAINS (space-separated names), as
 *   certbot's do; its output goes to stderr, and a hook exiting non-zero counts as a failure.
 * - Returns the exit code: 0 when every due name was renewed (or nothing was due), 1 when any order
 *   failed, was deferred by the backoff, or its hook failed. One line per name goes to `out`.
 * - HTTP-01 is answered wherever this runs: when an ACME order may use HTTP-01 and nothing listens on
 *   the HTTP port (PROXIMATION_HTTP_PORT on PROXIMATION_LISTEN_ADDRESS), renew listens there itself for
 *   the run (answering challenges from the shared challenge directory, redirecting the rest as the proxy
 *   does) and closes it before returning. When the port is taken, a proxy on this directory is assumed to
 *   answer from the same shared directory, as before. When it cannot listen (EACCES: port 80 without the
 *   capability), it says so before ordering and orders anyway (a proxy elsewhere on the volume may answer).
 * Throws: the storage's errors at opening (ERR_STORAGE_AUTH, ERR_STORAGE_UNAVAILABLE), ERR_ROUTES_NOT_FOUND
 * when there is no routing table, the table's errors, ERR_RENEW_NAME_NOT_ROUTED, and the issuer's set-up
 * errors.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, certificateNames, errorMessage, readRoutingTable, routesNotFound, type SiteChallenge, type Storage } from '@proximation/shared';
import { CertStore } from './certs/cert-store.js';
import { CertificateManager, type RenewOutcome } from './certs/certificate-manager.js';
import { ChallengeStore } from './certs/challenge-store.js';
import { http01Responder } from './certs/http01-responder.js';
import { HttpListener } from './listeners/http-listener.js';
import { listenIfFree } from './listeners/listen.js';
import { openIssuer } from './certs/open-issuer.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { openStateStorage, routesLocation } from './state-storage.js';

export interface RenewRequest {
  force: boolean;
  dryRun: boolean;
  /** Only these names; empty: every routed name. */
  certNames: string[];
  /** Sleep a uniform random time below this first, so a fleet's crons do not all call the CA at once. */
  randomDelayMs: number;
  deployHook: string | undefined;
}

export interface RenewIo {
  out: Writable;
  /** Where deploy hooks write their output. */
  hookOutput: Writable;
  env: NodeJS.ProcessEnv;
  /** Where the routing table's location came from, for the message when there is none. */
  routesOrigin: string;
}

export async function renewCertificates(config: Config, request: RenewRequest, log: Logger, io: RenewIo): Promise<number> {
  const storage = await openStateStorage(config, log);
  try {
    return await renewWith(storage, config, request, log, io);
  } finally {
    await storage.close();
  }
}

async function renewWith(storage: Storage, config: Config, request: RenewRequest, log: Logger, io: RenewIo): Promise<number> {
  const routes = routesLocation(config, storage);
  if ((await routes.storage.read(routes.key)) === undefined) {
    throw routesNotFound(routes.storage, routes.key, io.routesOrigin, 'renew renews routed names only; "deploy site add" creates a table');
  }
  const table = await readRoutingTable(routes.storage, routes.key);
  const routed = new Set(table.sites.flatMap(certificateNames));
  const siteChallenges = new Map(table.sites.flatMap((site) => (site.challenge === undefined ? [] : certificateNames(site).map((host) => [host, site.challenge!] as const))));
  const notRouted = request.certNames.filter((name) => !routed.has(name));
  if (notRouted.length > 0) {
    throw new ProximationError(
      'ERR_RENEW_NAME_NOT_ROUTED',
      `--cert-name ${notRouted.join(', ')}: not in the routing table ${config.routesPath}; only routed names are renewed. Routed: ${[...routed].sort().join(', ') || 'none'}.`,
    );
  }
  const names = request.certNames.length > 0 ? [...new Set(request.certNames)] : [...routed].sort();
  if (request.randomDelayMs > 0) {
    const ms = randomInt(request.randomDelayMs);
    log.info({ delayMs: ms }, 'waiting a random delay before renewing');
    await delay(ms);
  }

  const store = new CertStore(config.letsencryptDir, storage);
  const challenges = new ChallengeStore(config.letsencryptDir, storage);
  const issuer = await openIssuer(config, { store, challenges, log });
  const manager = new CertificateManager({ store, issuer, pollMs: config.certPollMs, log, onCertificate: () => {}, onRemoved: () => {} });
  const usesHttp01 = config.issuer === 'acme' && names.some((name) => (siteChallenges.get(name) ?? config.acmeChallenge) === 'http-01');
  const listener = usesHttp01 ? await answerHttp01(config, routed, challenges, log) : undefined;
  try {
    return await renewNames(names, request, { manager, store, siteChallenges }, io);
  } finally {
    await listener?.close();
  }
}

/**
 * The HTTP listener of this run, when the HTTP port is free: the CA's HTTP-01 validation reaches it; undefined
 * when another process (a proxy) holds the port or it cannot be bound (said in the log).
 */
async function answerHttp01(config: Config, routed: ReadonlySet<string>, challenges: ChallengeStore, log: Logger): Promise<HttpListener | undefined> {
  const listener = new HttpListener({
    port: config.httpPort,
    host: config.listenAddress,
    publicHttpsPort: config.publicHttpsPort,
    isRouted: (host) => routed.has(host),
    challenges: http01Responder(challenges, log),
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxHeaderSize: config.maxHeaderSize,
    maxConnections: config.maxConnections,
  });
  const where = { port: config.httpPort, address: config.listenAddress ?? 'all interfaces' };
  try {
    if ((await listenIfFree(listener.server, config.httpPort, config.listenAddress)) !== undefined) {
      log.info(where, 'answering HTTP-01 challenges on the HTTP port for this run (no proxy listens there)');
      return listener;
    }
    log.info(where, 'the HTTP port is in use: a proxy on this directory is expected to answer the HTTP-01 challenges from the shared challenge directory');
  } catch (err) {
    log.warn(
      { ...where, err: errorMessage(err) },
      'cannot answer HTTP-01 challenges here: orders over HTTP-01 succeed only if a proxy on this directory answers them on the name\'s port 80',
    );
  }
  return undefined;
}

async function renewNames(
  names: string[],
  request: RenewRequest,
  { manager, store, siteChallenges }: { manager: CertificateManager; store: CertStore; siteChallenges: ReadonlyMap<string, SiteChallenge> },
  io: RenewIo,
): Promise<number> {
  const results = await Promise.all(
    names.map(async (name) => {
      let outcome: RenewOutcome;
      try {
        outcome = await manager.renew(name, { force: request.force, dryRun: request.dryRun, challenge: siteChallenges.get(name) });
      } catch (err) {
        outcome = { status: 'failed', error: errorMessage(err), backoff: undefined, cert: undefined };
      }
      let hookError: string | undefined;
      if (outcome.status === 'renewed' && request.deployHook !== undefined) {
        hookError = await runDeployHook(request.deployHook, store.liveDir(name), outcome.cert.names, io);
      }
      return { name, outcome, hookError };
    }),
  );
  let failed = 0;
  for (const { name, outcome, hookError } of results) {
    io.out.write(`${name}: ${describeOutcome(outcome)}${hookError === undefined ? '' : `; deploy hook failed: ${hookError}`}\n`);
    if (outcome.status === 'failed' || outcome.status === 'deferred' || hookError !== undefined) failed++;
  }
  io.out.write(
    failed > 0 ? `${failed} of ${names.length} renewals failed.\n` : names.length === 0 ? 'No routed names.\n' : request.dryRun ? 'Dry run: all orders succeeded, nothing stored.\n' : 'All renewals succeeded or were not due.\n',
  );
  return failed > 0 ? 1 : 0;
}

function describeOutcome(outcome: RenewOutcome): string {
  switch (outcome.status) {
    case 'not-due':
      return `not due until renewal time (expires ${outcome.cert.notAfter.toISOString()})`;
    case 'renewed':
      return `renewed (expires ${outcome.cert.notAfter.toISOString()})`;
    case 'renewed-by-peer':
      return `renewed by another instance (expires ${outcome.cert.notAfter.toISOString()})`;
    case 'dry-run-ok':
      return 'dry run: order succeeded, nothing stored';
    case 'deferred':
      return `failed before (${outcome.backoff.lastError}); next attempt after ${outcome.backoff.nextAttemptAt.toISOString()}, use --force-renewal to try now`;
    case 'failed':
      return `failed: ${outcome.error}${outcome.backoff === undefined ? '' : `; next attempt after ${outcome.backoff.nextAttemptAt.toISOString()}`}`;
  }
}

/** Runs `command` through /bin/sh as certbot runs deploy hooks; resolves to an error message or undefined. */
function runDeployHook(command: string, lineage: string, domains: string[], io: RenewIo): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...io.env, RENEWED_LINEAGE: lineage, RENEWED_DOMAINS: domains.join(' ') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(io.hookOutput, { end: false });
    child.stderr.pipe(io.hookOutput, { end: false });
    child.once('error', (err) => resolve(errorMessage(err)));
    child.once('close', (code, signal) => resolve(code === 0 ? undefined : `${command} exited with ${code ?? signal}`));
  });
}
