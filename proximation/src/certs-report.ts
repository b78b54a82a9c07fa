/**
 * `proximation certs`: what the store holds and what the routing table wants, like `certbot
 * certificates`, one entry per certificate name (lineage, lineage-name.ts), sorted by name:
 *
 * - every name the routing table routes (`routed`), whether or not it has a certificate yet: one that
 *   never got one (the usual "DNS not pointed here yet") is `missing`, with its last error and the next
 *   attempt the backoff allows (null: nothing failed, the next order may start now);
 * - every lineage under live/, with its names, issuer, serial, expiry, days left, the next renewal time
 *   (the renewal schedule, or the backoff's next attempt when an order failed and that is later) and the
 *   last error; a lineage no site routes any more is `not-routed` and has no next renewal (nothing renews
 *   it); one that cannot be read is `unreadable`, with the problem as its error.
 *
 * Read-only: it never locks or writes. Throws only what listing live/ throws. Without a routing table
 * (`routedHosts` undefined) only the lineages are listed, with `routed: null`.
 */
import { errorMessage } from '@proximation/shared';
import { BackoffStore, type BackoffState } from './certs/backoff.js';
import { CertStore } from './certs/cert-store.js';
import { lineageName } from './certs/lineage-name.js';
import { renewalTime } from './certs/renewal-schedule.js';

const DAY_MS = 86_400_000;

export type CertificateStatus = 'valid' | 'expired' | 'missing' | 'unreadable' | 'not-routed';

export interface LineageReport {
  name: string;
  path: string;
  status: CertificateStatus;
  /** Whether a site routes the name; null when there is no routing table to ask. */
  routed: boolean | null;
  domains: string[];
  issuer: string | null;
  serialNumber: string | null;
  expiry: string | null;
  /** Whole days until expiry, rounded down; negative once expired. */
  daysLeft: number | null;
  /** When it is renewed next; null without a certificate, or when no site routes it. */
  nextRenewal: string | null;
  /** When the backoff lets the next order start after failures; null when nothing failed. */
  nextAttempt: string | null;
  failures: number;
  lastError: string | null;
}

/** `routedHosts`: the names the routing table needs certificates for (certificateNames); undefined: no table. */
export async function certificatesReport(store: CertStore, routedHosts: readonly string[] | undefined, now: Date): Promise<LineageReport[]> {
  const backoff = new BackoffStore(store.storage);
  const routed = routedHosts === undefined ? undefined : new Map(routedHosts.map((host) => [lineageName(host), host]));
  const stored = new Set(await store.list());
  const names = [...new Set([...stored, ...(routed?.keys() ?? [])])].sort();
  return Promise.all(
    names.map(async (name): Promise<LineageReport> => {
      const state: BackoffState | undefined = await backoff.read(name).catch(() => undefined);
      const isRouted = routed === undefined ? null : routed.has(name);
      const base = {
        name,
        path: store.liveDir(name),
        routed: isRouted,
        nextAttempt: state?.nextAttemptAt.toISOString() ?? null,
        failures: state?.failures ?? 0,
        lastError: state?.lastError ?? null,
      };
      const none = { issuer: null, serialNumber: null, expiry: null, daysLeft: null, nextRenewal: null };
      if (!stored.has(name)) return { ...base, ...none, status: 'missing', domains: [routed!.get(name)!] };
      try {
        const cert = await store.read(name);
        if (cert === undefined) throw new Error('the lineage disappeared while listing');
        const scheduled = renewalTime(cert);
        const next = state !== undefined && state.nextAttemptAt > scheduled ? state.nextAttemptAt : scheduled;
        const expired = cert.notAfter.getTime() <= now.getTime();
        return {
          ...base,
          status: isRouted === false ? 'not-routed' : expired ? 'expired' : 'valid',
          domains: cert.names,
          issuer: cert.issuer,
          serialNumber: cert.serialNumber,
          expiry: cert.notAfter.toISOString(),
          daysLeft: Math.floor((cert.notAfter.getTime() - now.getTime()) / DAY_MS),
          nextRenewal: isRouted === false ? null : next.toISOString(),
        };
      } catch (err) {
        return { ...base, ...none, status: 'unreadable', domains: [], lastError: errorMessage(err) };
      }
    }),
  );
}

/** Where the report looked, for its text: the store and the routing table, and why that could not be used. */
export interface ReportSources {
  letsencryptDir: string;
  routesPath: string;
  /** Set when the routing table was not read (not found, invalid): names were not compared with it. */
  routesProblem: string | undefined;
}

/** The report as text, in the spirit of `certbot certificates`. */
export function formatCertificatesReport(reports: LineageReport[], sources: ReportSources): string {
  const problem = sources.routesProblem === undefined ? '' : ` (${sources.routesProblem}; so the certificates were not compared with the routed names)`;
  const looked = `Looked in ${sources.letsencryptDir}/live and the routing table ${sources.routesPath}${problem}.`;
  if (reports.length === 0) return `No certificates found and no routed names. ${looked}\n`;
  const blocks = reports.map((r) => {
    const failed = r.lastError === null ? [] : [`    Last Error: ${r.lastError}${r.failures > 0 ? ` (${r.failures} failed attempts)` : ''}`];
    if (r.status === 'missing') {
      return [
        `  Certificate Name: ${r.name}`,
        `    Domains: ${r.domains.join(' ')}`,
        '    Certificate: none yet (routed, never obtained)',
        ...failed,
        `    Next Attempt: ${r.nextAttempt ?? 'now (no failed order recorded; a running proxy or "proximation renew" orders it)'}`,
      ].join('\n');
    }
    return [
      `  Certificate Name: ${r.name}`,
      `    Domains: ${r.domains.join(' ') || '-'}`,
      `    Issuer: ${r.issuer ?? '-'}`,
      `    Serial Number: ${r.serialNumber ?? '-'}`,
      `    Expiry Date: ${r.expiry ?? '-'}${r.daysLeft === null ? '' : r.daysLeft < 0 ? ' (EXPIRED)' : ` (VALID: ${r.daysLeft} days)`}`,
      `    Next Renewal: ${r.status === 'not-routed' ? 'none (no site routes this name any more; it is not renewed)' : (r.nextRenewal ?? '-')}`,
      `    Certificate Path: ${r.path}/fullchain.pem`,
      ...failed,
    ].join('\n');
  });
  return `Found the following certificates:\n${blocks.join('\n')}\n${looked}\n`;
}
