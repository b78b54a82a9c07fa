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
 */
import path from 'node:path';
import { errorMessage, withLock } from '@proximation/shared';
import type { Logger } from '../logger.js';
import type { CertificateFiles, CertStore, LoadedCertificate } from './cert-store.js';
import { isRenewalDue } from './renewal-schedule.js';

/** Something that can issue a certificate for a set of names (the local CA, or an ACME CA). */
export interface CertificateIssuer {
  readonly name: string;
  /** Whether a stored certificate came from this issuer; one from another issuer is replaced. */
  issued(cert: LoadedCertificate): boolean;
  issue(names: string[]): Promise<CertificateFiles>;
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

  private usable(cert: LoadedCertificate | undefined, now: Date): cert is LoadedCertificate {
    return cert !== undefined && this.options.issuer.issued(cert) && !isRenewalDue(cert, now);
  }

  private async obtain(host: string): Promise<LoadedCertificate | undefined> {
    const { store, issuer, log } = this.options;
    let cert = await store.read(host);
    if (!this.usable(cert, new Date())) {
      cert = await withLock(path.join(this.options.locksDir, `${host}.lock`), async () => {
        // Another instance may have done it while this one waited for the lock.
        const current = await store.read(host);
        if (this.usable(current, new Date())) return current;
        log.info({ host, issuer: issuer.name, reason: current === undefined ? 'missing' : 'due' }, 'issuing certificate');
        await store.write(host, await issuer.issue([host]));
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
