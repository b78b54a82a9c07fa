/**
 * Makes sure every routed host has a valid certificate in the store and in memory, and nothing more.
 *
 * - Only names the routing table routes are ever issued (`setHosts`): a CA is never asked for a name
 *   that is not ours.
 * - One issuance per name across every instance sharing the storage: the per-name lock
 *   (`proximation/locks/<lineage>.lock`) is taken, the store re-read under it, and a certificate another
 *   instance wrote meanwhile is simply loaded.
 * - Certificates that other instances write are noticed by polling (`checkAll` every certPollMs): NFS
 *   delivers no events for them, and on Redis the poll is as cheap and repairs a missed message.
 * - Work happens off the request path; `certificateFor` is what an SNI lookup waits on for a routed
 *   name whose certificate is not in memory yet.
 * - A new certificate is stored (CertStore.write), then its renewal/<lineage>.conf when the issuer gives
 *   renewal parameters, both under the lock and fenced by it: nothing is written once the lock is lost
 *   (ERR_CERT_LOCK_LOST, or the storage's ERR_LOCK_LOST when it is lost between two writes; on Redis the
 *   check and each write are one script, so a holder that stalled past its lease cannot overwrite its
 *   successor's lineage; logged, and the next check starts over and finds what the new holder wrote).
 * - A failed order is recorded in the shared backoff state (backoff.ts) under the lock, logged with the
 *   name and the CA's message, and not retried by any instance before its next attempt time; the
 *   certificate already there keeps being served meanwhile. A success clears the state.
 * - Renewal is due at the issuer's advice (ACME ARI) when it gives one, else by the lifetime rule
 *   (renewal-schedule.ts); a renewal order names the certificate it replaces.
 * - At most MAX_ORDERS_IN_FLIGHT orders run at once in this process.
 * - `renew` is the one path to an order, for the background checks and for `proximation renew`; it
 *   reports what happened instead of throwing for a failed order (lock and store errors still throw).
 */
import { ProximationError, errorMessage, isProximationError, withStorageLock } from '@proximation/shared';
import type { AcmeChallengeType } from '../config.js';
import type { Logger } from '../logger.js';
import { AcmeRateLimitedError } from './acme-rate-limited-error.js';
import { BackoffStore, isAttemptAllowed, type BackoffState } from './backoff.js';
import type { CertificateFiles, CertStore, LoadedCertificate } from './cert-store.js';
import { lineageName } from './lineage-name.js';
import { writeRenewalConf, type ConfValue } from './renewal-conf.js';
import { OrderLimiter } from './order-limiter.js';
import { renewalTime } from './renewal-schedule.js';

/**
 * A burst of new names queues behind this many orders. Bound by Let's Encrypt's tightest published
 * per-IP request limit, /acme/new-nonce (20 requests/s, burst 10): when the transport's nonce pool is
 * empty (at start), each order in flight fetches one nonce at once, so at most 8, leaving room for the
 * account and ARI requests. Everything else is far looser: 8 orders poll (acme-poll.ts: every 250 ms at
 * most) 32 times a second at worst against /acme/* (250/s, burst 125), and New Orders per Account
 * (300 per 3 h, refilling 1 per 36 s) limits how many orders, not how many at once.
 */
export const MAX_ORDERS_IN_FLIGHT = 8;
/**
 * Checks of the store (each opens several files) in flight at once: a table of 10,000 hosts must not
 * open 10,000 lineages at the same moment (EMFILE), which the certificate benchmark showed.
 */
export const MAX_CHECKS_IN_FLIGHT = 32;

/** What an issuer hands over: the files, and what renewal/<lineage>.conf should say about them. */
export interface IssuedCertificate extends CertificateFiles {
  /** `[renewalparams]` entries, in order; absent for issuers certbot cannot renew from (the local CA). */
  renewalParams?: [string, ConfValue][];
}

export interface IssueOptions {
  /** The certificate of this issuer that the new one succeeds, when renewing. */
  replaces?: LoadedCertificate;
  /** The lineage the certificate will be stored as (names[0]'s by default). */
  lineage?: string;
  /** The site's choice of ACME challenge; undefined: the lineage's or the configured one. */
  challenge?: AcmeChallengeType;
}

/** Something that can issue a certificate for a set of names (the local CA, or an ACME CA). */
export interface CertificateIssuer {
  readonly name: string;
  /** Whether a stored certificate came from this issuer; one from another issuer is replaced. */
  issued(cert: LoadedCertificate): Promise<boolean>;
  /** When the CA advises renewing one of its certificates (ACME ARI); undefined: the lifetime rule. */
  renewalTime?(cert: LoadedCertificate): Promise<Date | undefined>;
  issue(names: string[], options?: IssueOptions): Promise<IssuedCertificate>;
}

export interface CertificateManagerOptions {
  store: CertStore;
  issuer: CertificateIssuer;
  pollMs: number;
  log: Logger;
  /** Called with each certificate that is new to this process (issued here or found in the store). */
  onCertificate: (host: string, cert: LoadedCertificate) => void;
  onRemoved: (host: string) => void;
  /** Told of each order's result (metrics); optional. Dry runs are not counted. */
  onOrder?: (host: string, result: 'success' | 'failure') => void;
}

export interface RenewOptions {
  /** Order even when the certificate is not due and the backoff says wait. */
  force: boolean;
  /** Order whether due or not, but store nothing (no lineage, renewal file or backoff state) and take no lock. */
  dryRun: boolean;
  /** The ACME challenge the host's site chose; undefined: the lineage's or the configured one. */
  challenge?: AcmeChallengeType | undefined;
}

/** What `renew` did for one name; `cert` is what the store holds afterwards, if anything. */
export type RenewOutcome =
  | { status: 'not-due' | 'renewed' | 'renewed-by-peer'; cert: LoadedCertificate }
  | { status: 'dry-run-ok' }
  | { status: 'deferred'; backoff: BackoffState; cert: LoadedCertificate | undefined }
  | { status: 'failed'; error: string; backoff: BackoffState | undefined; cert: LoadedCertificate | undefined };

export class CertificateManager {
  private hosts = new Set<string>();
  private challenges: ReadonlyMap<string, AcmeChallengeType> = new Map();
  /** Serial number served per host, to notice when the store has a newer certificate. */
  private readonly served = new Map<string, string>();
  private readonly inFlight = new Map<string, Promise<LoadedCertificate | undefined>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly limiter = new OrderLimiter(MAX_ORDERS_IN_FLIGHT);
  private readonly checks = new OrderLimiter(MAX_CHECKS_IN_FLIGHT);
  readonly backoff: BackoffStore;

  constructor(private readonly options: CertificateManagerOptions) {
    this.backoff = new BackoffStore(options.store.storage);
  }

  /**
   * The routed hosts (`*.example.com` for a wildcard) after each routing-table change, and the challenge
   * a site chose for its hosts; starts work for new ones in the background.
   */
  setHosts(hosts: Iterable<string>, challenges: ReadonlyMap<string, AcmeChallengeType> = new Map()): void {
    this.challenges = challenges;
    const next = new Set(hosts);
    for (const host of this.hosts) {
      if (!next.has(host)) {
        this.served.delete(host);
        this.options.onRemoved(host);
      }
    }
    this.hosts = next;
    for (const host of next) if (!this.served.has(host)) void this.ensure(host);
  }

  start(): void {
    const tick = (): void => {
      this.timer = setTimeout(() => void this.checkAll().finally(() => this.timer !== undefined && tick()), this.options.pollMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.allSettled(this.inFlight.values());
  }

  /**
   * The routed host whose certificate serves `name`: the name itself, else the wildcard host of its
   * parent (`*.example.com` for a.example.com); undefined for names not routed.
   */
  servingHost(name: string): string | undefined {
    if (this.hosts.has(name)) return name;
    const dot = name.indexOf('.');
    const wildcard = dot === -1 ? undefined : `*${name.slice(dot)}`;
    return wildcard !== undefined && this.hosts.has(wildcard) ? wildcard : undefined;
  }

  /** The certificate for a routed host, loading or issuing it if needed; undefined for other names. */
  certificateFor(host: string): Promise<LoadedCertificate | undefined> {
    const serving = this.servingHost(host);
    if (serving === undefined) return Promise.resolve(undefined);
    return this.ensure(serving);
  }

  /** One pass over every routed host: pick up peers' certificates, renew what is due. */
  async checkAll(): Promise<void> {
    await Promise.allSettled([...this.hosts].map((host) => this.ensure(host)));
  }

  private ensure(host: string): Promise<LoadedCertificate | undefined> {
    let promise = this.inFlight.get(host);
    if (promise === undefined) {
      promise = this.checks
        .run(() => this.obtain(host))
        .catch((err: unknown) => {
          this.options.log.error({ host, err: errorMessage(err) }, 'could not obtain a certificate; will retry');
          return undefined;
        })
        .finally(() => this.inFlight.delete(host));
      this.inFlight.set(host, promise);
    }
    return promise;
  }

  private async usable(cert: LoadedCertificate | undefined, now: Date): Promise<boolean> {
    const { issuer } = this.options;
    if (cert === undefined || !(await issuer.issued(cert))) return false;
    const due = (await issuer.renewalTime?.(cert)) ?? renewalTime(cert);
    return now.getTime() < due.getTime();
  }

  private async obtain(host: string): Promise<LoadedCertificate | undefined> {
    const outcome = await this.renew(host, { force: false, dryRun: false, challenge: this.challenges.get(host) });
    const cert = 'cert' in outcome ? outcome.cert : undefined;
    if (cert !== undefined && this.hosts.has(host) && this.served.get(host) !== cert.serialNumber) {
      this.served.set(host, cert.serialNumber);
      this.options.onCertificate(host, cert);
    }
    return cert;
  }

  /** Orders a certificate for `host` if it is due (or `force`), unless the backoff says wait. */
  async renew(host: string, { force, dryRun, challenge }: RenewOptions): Promise<RenewOutcome> {
    const { store, issuer, log } = this.options;
    const lineage = lineageName(host);
    const before = await store.read(lineage);
    // A dry run always orders, as certbot's does: it is there to prove that renewal would work.
    if (!force && !dryRun && before !== undefined && (await this.usable(before, new Date()))) return { status: 'not-due', cert: before };
    if (dryRun) {
      try {
        await this.limiter.run(() => issuer.issue([host], { lineage, challenge }));
        return { status: 'dry-run-ok' };
      } catch (err) {
        return { status: 'failed', error: errorMessage(err), backoff: undefined, cert: before };
      }
    }
    const waiting = await this.backoff.read(lineage);
    if (!force && waiting !== undefined && !isAttemptAllowed(waiting, new Date())) return { status: 'deferred', backoff: waiting, cert: before };
    return withStorageLock(store.storage, `proximation/locks/${lineage}.lock`, async (lock) => {
      // Another instance may have done it, or failed, while this one waited for the lock.
      const current = await store.read(lineage);
      if (current !== undefined && current.serialNumber !== before?.serialNumber && (await issuer.issued(current))) {
        return { status: 'renewed-by-peer', cert: current };
      }
      if (!force && current !== undefined && (await this.usable(current, new Date()))) return { status: 'not-due', cert: current };
      const state = await this.backoff.read(lineage);
      if (!force && state !== undefined && !isAttemptAllowed(state, new Date())) return { status: 'deferred', backoff: state, cert: current };
      log.info({ host, issuer: issuer.name, reason: force ? 'forced' : current === undefined ? 'missing' : 'due' }, 'issuing certificate');
      let issued: IssuedCertificate;
      try {
        const replaces = current !== undefined && (await issuer.issued(current)) ? current : undefined;
        issued = await this.limiter.run(() => issuer.issue([host], { lineage, challenge, ...(replaces === undefined ? {} : { replaces }) }));
      } catch (err) {
        this.options.onOrder?.(host, 'failure');
        if (lock.lost) throw err;
        const message = errorMessage(err);
        const failed = await this.backoff.record(lineage, message, new Date(), err instanceof AcmeRateLimitedError ? err.retryAfter : undefined, lock);
        log.error(
          { host, code: isProximationError(err) ? err.code : undefined, err: message, failures: failed.failures, nextAttemptAt: failed.nextAttemptAt.toISOString() },
          'could not obtain a certificate; will retry',
        );
        return { status: 'failed', error: message, backoff: failed, cert: current };
      }
      if (lock.lost) {
        throw new ProximationError(
          'ERR_CERT_LOCK_LOST',
          `the lock ${lock.key} expired while the certificate for ${host} was being issued; it was not stored, to leave the lineage to the instance that holds the lock now.`,
        );
      }
      await store.write(lineage, issued, { fence: lock });
      if (issued.renewalParams !== undefined) await writeRenewalConf(store, lineage, issued.renewalParams, { fence: lock });
      await this.backoff.clear(lineage);
      const stored = await store.read(lineage);
      if (stored === undefined) throw new ProximationError('ERR_CERT_LINEAGE_INVALID', `the certificate for ${host} was written to ${store.liveDir(lineage)} but cannot be read back.`);
      this.options.onOrder?.(host, 'success');
      return { status: 'renewed', cert: stored };
    });
  }
}
