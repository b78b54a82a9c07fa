/**
 * `proximation certs`: what the store holds, like `certbot certificates`: each lineage under live/ with
 * its names, issuer, serial, expiry, days left, the next renewal time (the renewal schedule, or the
 * backoff's next attempt when an order failed) and the last error. Read-only: it never locks or writes.
 * A lineage that cannot be read is listed with the problem as its error instead of failing the listing.
 * Throws only what listing the live/ directory throws.
 */
import { errorMessage } from '@proximation/shared';
import { BackoffStore, backoffStateDir, type BackoffState } from './certs/backoff.js';
import { CertStore } from './certs/cert-store.js';
import { renewalTime } from './certs/renewal-schedule.js';

const DAY_MS = 86_400_000;

export interface LineageReport {
  name: string;
  path: string;
  domains: string[];
  issuer: string | null;
  serialNumber: string | null;
  expiry: string | null;
  /** Whole days until expiry, rounded down; negative once expired. */
  daysLeft: number | null;
  nextRenewal: string | null;
  failures: number;
  lastError: string | null;
}

export async function certificatesReport(letsencryptDir: string, now: Date): Promise<LineageReport[]> {
  const store = new CertStore(letsencryptDir);
  const backoff = new BackoffStore(backoffStateDir(letsencryptDir));
  return Promise.all(
    (await store.list()).map(async (name): Promise<LineageReport> => {
      const state: BackoffState | undefined = await backoff.read(name).catch(() => undefined);
      const base = { name, path: store.liveDir(name), failures: state?.failures ?? 0 };
      try {
        const cert = await store.read(name);
        if (cert === undefined) throw new Error('the lineage disappeared while listing');
        const scheduled = renewalTime(cert);
        const next = state !== undefined && state.nextAttemptAt > scheduled ? state.nextAttemptAt : scheduled;
        return {
          ...base,
          domains: cert.names,
          issuer: cert.issuer,
          serialNumber: cert.serialNumber,
          expiry: cert.notAfter.toISOString(),
          daysLeft: Math.floor((cert.notAfter.getTime() - now.getTime()) / DAY_MS),
          nextRenewal: next.toISOString(),
          lastError: state?.lastError ?? null,
        };
      } catch (err) {
        return { ...base, domains: [], issuer: null, serialNumber: null, expiry: null, daysLeft: null, nextRenewal: null, lastError: errorMessage(err) };
      }
    }),
  );
}

/** The report as text, in the spirit of `certbot certificates`. */
export function formatCertificatesReport(reports: LineageReport[]): string {
  if (reports.length === 0) return 'No certificates found.\n';
  const blocks = reports.map((r) =>
    [
      `  Certificate Name: ${r.name}`,
      `    Domains: ${r.domains.join(' ') || '-'}`,
      `    Issuer: ${r.issuer ?? '-'}`,
      `    Serial Number: ${r.serialNumber ?? '-'}`,
      `    Expiry Date: ${r.expiry ?? '-'}${r.daysLeft === null ? '' : r.daysLeft < 0 ? ' (EXPIRED)' : ` (VALID: ${r.daysLeft} days)`}`,
      `    Next Renewal: ${r.nextRenewal ?? '-'}`,
      `    Certificate Path: ${r.path}/fullchain.pem`,
      ...(r.lastError === null ? [] : [`    Last Error: ${r.lastError}${r.failures > 0 ? ` (${r.failures} failed attempts)` : ''}`]),
    ].join('\n'),
  );
  return `Found the following certificates:\n${blocks.join('\n')}\n`;
}
