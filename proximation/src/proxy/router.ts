/**
 * Host → site → active version → upstreams, answered from memory. A new routing table is compiled off
 * the request path into a fresh map and swapped in with one assignment, so a request sees either the
 * old table or the new one, never a mix. What a site adds to every response (its Strict-Transport-
 * Security value) is computed here too, once per table, not per request.
 *
 * A wildcard host (`*.example.com`) routes every name one label under it that no site lists exactly:
 * exact hosts win, and the wildcard lookup happens only when the exact one misses.
 */
import { hstsHeaderValue, wildcardOf, type RoutingTable, type SiteChallenge } from '@proximation/shared';
import { RoundRobin } from './upstream-selection.js';
import type { Upstreams } from './upstreams.js';

export interface Route {
  site: string;
  /** Undefined when the site has no active version yet. */
  version: string | undefined;
  upstreams: RoundRobin | undefined;
  /** The site's Strict-Transport-Security header value; undefined when the site has no HSTS. */
  hsts: string | undefined;
}

export class Router {
  private routes = new Map<string, Route>();
  private challenges = new Map<string, SiteChallenge>();
  private currentGeneration = -1;

  constructor(private readonly upstreams: Upstreams) {}

  get generation(): number {
    return this.currentGeneration;
  }

  /** Every host the table routes (wildcards as `*.example.com`); certificates are only ever obtained for these. */
  get hosts(): string[] {
    return [...this.routes.keys()];
  }

  /** The ACME challenge each host's site chose, for the hosts of sites that chose one. */
  get hostChallenges(): ReadonlyMap<string, SiteChallenge> {
    return this.challenges;
  }

  update(table: RoutingTable): void {
    const routes = new Map<string, Route>();
    const challenges = new Map<string, SiteChallenge>();
    const origins = new Set<string>();
    for (const site of table.sites) {
      const active = site.versions.find((v) => v.name === site.activeVersion);
      const selection = active && new RoundRobin(active.upstreams.map((origin) => this.upstreams.get(origin)));
      for (const origin of active?.upstreams ?? []) origins.add(origin);
      const route: Route = { site: site.name, version: active?.name, upstreams: selection, hsts: site.hsts && hstsHeaderValue(site.hsts) };
      for (const host of site.hosts) {
        routes.set(host, route);
        if (site.challenge !== undefined) challenges.set(host, site.challenge);
      }
    }
    this.routes = routes;
    this.challenges = challenges;
    this.currentGeneration = table.generation;
    this.upstreams.retain(origins);
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
