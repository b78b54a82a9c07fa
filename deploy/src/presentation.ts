/**
 * How commands show sites, versions and the routing table, so that every command shows them alike:
 * the JSON shapes of --json output and the phrases of the one-line text output. Pure functions.
 */
import { hstsHeaderValue, previewHost, type RoutingTable, type Site, type SiteChallenge } from '@proximation/shared';
import { plural } from './command-line.js';

export interface SiteJson {
  name: string;
  hosts: readonly string[];
  tagPrefix: string | null;
  hsts: { maxAge: number; includeSubDomains: boolean; preload: boolean } | null;
  challenge: SiteChallenge | null;
  preview: { domain: string; networks: readonly string[]; token: boolean } | null;
  activeVersion: string | null;
  versionCount: number;
}

export function siteJson(site: Site): SiteJson {
  return {
    name: site.name,
    hosts: site.hosts,
    tagPrefix: site.tagPrefix ?? null,
    hsts: site.hsts === undefined ? null : { maxAge: site.hsts.maxAge, includeSubDomains: site.hsts.includeSubDomains === true, preload: site.hsts.preload === true },
    challenge: site.challenge ?? null,
    preview: site.preview === undefined ? null : { domain: site.preview.domain, networks: site.preview.networks ?? [], token: site.preview.token === true },
    activeVersion: site.activeVersion,
    versionCount: site.versions.length,
  };
}

/** "hosts dev.example.com; tag prefix devbuild-", plus `; HSTS "max-age=31536000"` when the site has HSTS */
export function describeSite(site: Site): string {
  const hsts = site.hsts === undefined ? '' : `; HSTS "${hstsHeaderValue(site.hsts)}"`;
  const challenge = site.challenge === undefined ? '' : `; challenge ${site.challenge}`;
  const preview = site.preview === undefined ? '' : `; ${describePreview(site)}`;
  return `hosts ${site.hosts.join(', ')}; ${site.tagPrefix === undefined ? 'no tag prefix' : `tag prefix ${site.tagPrefix}`}${hsts}${challenge}${preview}`;
}

/** "preview hosts <version>.preview.example.com (networks 10.0.0.0/16 or the admin token)", "no preview hosts" */
export function describePreview(site: Site): string {
  const preview = site.preview;
  if (preview === undefined) return 'no preview hosts';
  const access = [...(preview.networks === undefined ? [] : [`networks ${preview.networks.join(', ')}`]), ...(preview.token === true ? ['the admin token'] : [])];
  return `preview hosts <version>.${preview.domain} (${access.length === 0 ? 'open to anyone' : access.join(' or ')})`;
}

/** The URL of a version's preview host; undefined when the site has no preview domain. */
export function previewUrl(site: Site, version: string): string | undefined {
  const host = previewHost(site, version);
  return host === undefined ? undefined : `https://${host}/`;
}

/** "active devbuild-42 of 3 versions", "no active version (1 version)" */
export function describeVersions(site: Site): string {
  const count = plural(site.versions.length, 'version');
  return site.activeVersion === null ? `no active version (${count})` : `active ${site.activeVersion} of ${count}`;
}

/** Who serves the site, for messages about a change that did not happen. */
export function servingNote(site: Site): string {
  return site.activeVersion === null ? `site ${site.name} has no active version` : `${site.name}/${site.activeVersion} keeps serving`;
}

/** The versions successive `deploy rollback`s would activate, next first (mirrors `rollback` in the routing table). */
export function rollbackOrder(site: Site): string[] {
  const order: string[] = [];
  let current = site.activeVersion;
  for (let i = site.history.length - 1; i >= 0; i--) {
    const name = site.history[i]!;
    if (name !== current) {
      order.push(name);
      current = name;
    }
  }
  return order;
}

export function generationNote(table: RoutingTable): string {
  return `routing table generation ${table.generation}`;
}
