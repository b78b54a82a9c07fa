/**
 * Host → site → active version → upstreams, answered from memory. A new routing table is compiled off
 * the request path into a fresh map and swapped in with one assignment, so a request sees either the
 * old table or the new one, never a mix. What a site adds to every response (its Strict-Transport-
 * Security value) is computed here too, once per table, not per request.
 *
 * A wildcard host (`*.example.com`) routes every name one label under it that no site lists exactly:
 * exact hosts win, and the wildcard lookup happens only when the exact one misses.
 *
 * A site with a preview domain routes `<version>.<domain>` to that version, active or staged, behind the
 * site's preview gate (preview-access.ts); a site's own host of the same name wins. The certificate
 * side holds `*.<domain>` for them all, not each preview host (certificateNames, instance-duties.ts).
 */
import { hstsHeaderValue, memberExpiresAt, previewHost, wildcardOf, type MemberRenewal, type RoutingTable, type SiteVersion } from '@proximation/shared';
import type { AdminAuthorizer } from '../admin/admin-auth.js';
import { previewGate, type PreviewGate } from './preview-access.js';
import { RoundRobin } from './upstream-selection.js';
import type { Upstreams } from './upstreams.js';

export interface Route {
  site: string;
  /** Undefined when the site has no active version yet. */
  version: string | undefined;
  upstreams: RoundRobin | undefined;
  /** The site's Strict-Transport-Security header value; undefined when the site has no HSTS. */
  hsts: string | undefined;
  /** On a preview host with restricted access: who may use it. */
  preview?: PreviewGate;
}

export class Router {
  private routes = new Map<string, Route>();
  private currentGeneration = -1;
  /** Members' lease renewals as last seen (members.ts), and every selection with members, to update. */
  private renewals: ReadonlyMap<string, MemberRenewal> = new Map();
  private leased: { site: string; version: SiteVersion; selection: RoundRobin }[] = [];

  /** `previewAuthorizer` judges the admin token presented on preview hosts. */
  constructor(
    private readonly upstreams: Upstreams,
    private readonly previewAuthorizer: AdminAuthorizer = () => 'disabled',
  ) {}

  get generation(): number {
    return this.currentGeneration;
  }

  update(table: RoutingTable): void {
    const routes = new Map<string, Route>();
    const origins = new Set<string>();
    const leased: typeof this.leased = [];
    const selection = (site: string, version: SiteVersion): RoundRobin | undefined => {
      if (version.upstreams.length === 0) return undefined;
      for (const origin of version.upstreams) origins.add(origin);
      const rotation = new RoundRobin(version.upstreams.map((origin) => this.upstreams.get(origin)));
      if (version.members !== undefined) {
        leased.push({ site, version, selection: rotation });
        this.expire(site, version, rotation);
      }
      return rotation;
    };
    for (const site of table.sites) {
      const active = site.versions.find((v) => v.name === site.activeVersion);
      const hsts = site.hsts && hstsHeaderValue(site.hsts);
      const route: Route = { site: site.name, version: active?.name, upstreams: active && selection(site.name, active), hsts };
      for (const host of site.hosts) routes.set(host, route);
    }
    // After every site's own hosts, which win over a preview host of the same name.
    for (const site of table.sites) {
      if (site.preview === undefined) continue;
      const gate = previewGate(site.preview, this.previewAuthorizer);
      const hsts = site.hsts && hstsHeaderValue(site.hsts);
      for (const version of site.versions) {
        const host = previewHost(site, version.name)!;
        if (routes.has(host)) continue;
        routes.set(host, { site: site.name, version: version.name, upstreams: selection(site.name, version), hsts, ...(gate === undefined ? {} : { preview: gate }) });
      }
    }
    this.routes = routes;
    this.leased = leased;
    this.currentGeneration = table.generation;
    this.upstreams.retain(origins);
  }

  /** The members' renewals seen now (by memberKey): each leased upstream's lease end moves with them. */
  setRenewals(renewals: ReadonlyMap<string, MemberRenewal>): void {
    this.renewals = renewals;
    for (const { site, version, selection } of this.leased) this.expire(site, version, selection);
  }

  private expire(site: string, version: SiteVersion, selection: RoundRobin): void {
    version.upstreams.forEach((upstream, i) => {
      const member = version.members?.find((m) => m.upstream === upstream);
      selection.expiresAt[i] = member === undefined ? Number.POSITIVE_INFINITY : memberExpiresAt(site, version.name, member, this.renewals);
    });
  }

  /** @param authority a Host header or :authority value, port and letter case as the client sent them */
  route(authority: string | undefined): Route | undefined {
    if (authority === undefined) return undefined;
    const host = hostOf(authority);
    const exact = this.routes.get(host);
    if (exact !== undefined) return exact;
    const wildcard = wildcardOf(host);
    return wildcard === undefined ? undefined : this.routes.get(wildcard);
  }
}

/** The host part of an authority: lower case, without port or trailing dot. */
export function hostOf(authority: string): string {
  let end = authority.length;
  if (authority.charCodeAt(0) !== 91 /* '[' */) {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) end = colon;
  } else {
    end = authority.indexOf(']') + 1;
  }
  if (authority.charCodeAt(end - 1) === 46 /* '.' */) end--;
  const host = end === authority.length ? authority : authority.slice(0, end);
  return host.toLowerCase();
}
