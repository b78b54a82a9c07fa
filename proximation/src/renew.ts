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
 * Throws: the routing table's errors, ERR_RENEW_NAME_NOT_ROUTED, and the issuer's set-up errors.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, certificateNames, errorMessage, readRoutingTableFile } from '@proximation/shared';
import { CertStore } from './certs/cert-store.js';
import { CertificateManager, type RenewOutcome } from './certs/certificate-manager.js';
import { ChallengeStore, challengesDir } from './certs/challenge-store.js';
import { locksDirOf, openIssuer } from './certs/open-issuer.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

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
}

export async function renewCertificates(config: Config, request: RenewRequest, log: Logger, io: RenewIo): Promise<number> {
  const table = await readRoutingTableFile(config.routesPath);
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

  const store = new CertStore(config.letsencryptDir);
  const locksDir = locksDirOf(config.letsencryptDir);
  const challenges = new ChallengeStore(challengesDir(config.letsencryptDir));
  const issuer = await openIssuer(config, { store, challenges, locksDir, log });
  const manager = new CertificateManager({ store, issuer, locksDir, pollMs: config.certPollMs, log, onCertificate: () => {}, onRemoved: () => {} });

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
