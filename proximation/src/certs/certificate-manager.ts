/**
 * Makes sure every routed host has a valid certificate in the store and in memory, and nothing more.
 *
 * - Only names the routing table routes are ever issued (`setHosts`): a CA is never asked for a name
 *   that is not ours.
 * - One issuance per name across every instance sharing the directory: the per-name lock is taken, the
 *   store re-read under it, and a certificate another instance wrote meanwhile is simply loaded.
 * - Certificates that other instances write are noticed by polling (`checkAll` every certPollMs): NFS
 *   delivers no events for them.
 * - Work happens off the request path; `certificateFor` is what an SNI lookup waits on for a routed
 *   name whose certificate is not in memory yet.
 * - A new certificate is stored (CertStore.write), then its renewal/<lineage>.conf when the issuer gives
 *   renewal parameters, both under the lock; nothing is written when the lock was lost meanwhile
 *   (ERR_CERT_LOCK_LOST, logged; the next check starts over and finds what the new holder wrote).
 */
import path from 'node:path';
import { ProximationError, errorMessage, withLock } from '@proximation/shared';
import type { Logger } from '../logger.js';
import type { CertificateFiles, CertStore, LoadedCertificate } from './cert-store.js';
import { writeRenewalConf, type ConfValue } from './renewal-conf.js';
import { isRenewalDue } from './renewal-schedule.js';

/** What an issuer hands over: the files, and what renewal/<lineage>.conf should say about them. */
export interface IssuedCertificate extends CertificateFiles {
  /** `[renewalparams]` entries, in order; absent for issuers certbot cannot renew from (the local CA). */
  renewalParams?: [string, ConfValue][];
}

/** Something that can issue a certificate for a set of names (the local CA, or an ACME CA). */
export interface CertificateIssuer {
  readonly name: string;
  /** Whether a stored certificate came from this issuer; one from another issuer is replaced. */
  issued(cert: LoadedCertificate): Promise<boolean>;
  issue(names: string[]): Promise<IssuedCertificate>;
}

export interface CertificateManagerOptions {
  store: CertStore;
  issuer: CertificateIssuer;
  locksDir: string;
  pollMs: number;
  log: Logger;
  /** Called with each certificate that is new to this process (issued here or found in the store). */
  onCertificate: (host: string, cert: LoadedCertificate) => void;
  onRemoved: (host: string) => void;
}

export class CertificateManager {
  private hosts = new Set<string>();
  /** Serial number served per host, to notice when the store has a newer certificate. */
  private readonly served = new Map<string, string>();
  private readonly inFlight = new Map<string, Promise<LoadedCertificate | undefined>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CertificateManagerOptions) {}

  /** The routed hosts, after each routing-table change; starts work for new ones in the background. */
  setHosts(hosts: Iterable<string>): void {
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

  /** The certificate for a routed host, loading or issuing it if needed; undefined for other names. */
  certificateFor(host: string): Promise<LoadedCertificate | undefined> {
    if (!this.hosts.has(host)) return Promise.resolve(undefined);
    return this.ensure(host);
  }

  /** One pass over every routed host: pick up peers' certificates, renew what is due. */
  async checkAll(): Promise<void> {
    await Promise.allSettled([...this.hosts].map((host) => this.ensure(host)));
  }

  private ensure(host: string): Promise<LoadedCertificate | undefined> {
    let promise = this.inFlight.get(host);
    if (promise === undefined) {
      promise = this.obtain(host)
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
    return cert !== undefined && !isRenewalDue(cert, now) && (await this.options.issuer.issued(cert));
  }

  private async obtain(host: string): Promise<LoadedCertificate | undefined> {
    const { store, issuer, log } = this.options;
    let cert = await store.read(host);
    if (!(await this.usable(cert, new Date()))) {
      cert = await withLock(path.join(this.options.locksDir, `${host}.lock`), async (lock) => {
        // Another instance may have done it while this one waited for the lock.
        const current = await store.read(host);
        if (await this.usable(current, new Date())) return current;
        log.info({ host, issuer: issuer.name, reason: current === undefined ? 'missing' : 'due' }, 'issuing certificate');
        const issued = await issuer.issue([host]);
        if (lock.lost) {
          throw new ProximationError(
            'ERR_CERT_LOCK_LOST',
            `the lock ${lock.path} expired while the certificate for ${host} was being issued; it was not stored, to leave the lineage to the instance that holds the lock now.`,
          );
        }
        await store.write(host, issued);
        if (issued.renewalParams !== undefined) await writeRenewalConf(store, host, issued.renewalParams);
        return store.read(host);
      });
    }
    if (cert !== undefined && this.hosts.has(host) && this.served.get(host) !== cert.serialNumber) {
      this.served.set(host, cert.serialNumber);
      this.options.onCertificate(host, cert);
    }
    return cert;
  }
}
