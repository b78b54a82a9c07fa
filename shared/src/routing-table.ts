/**
 * The routing table (routes.json, schema version 1; see notes/routing-table-format.md): its schema,
 * validation, serialisation and the pure operations that change it.
 *
 * Validation (`parseRoutingTable`, `validateRoutingTable`) runs on every read. It throws ProximationError
 * `ERR_ROUTES_NEWER_SCHEMA` for a schemaVersion above 1, and `ERR_ROUTES_INVALID` for anything else
 * wrong (malformed JSON with line and column; otherwise the JSON path such as
 * `sites[0].versions[1].upstreams[0]` and the value found), always naming `source`. A table that passes
 * is in normal form: hostnames and upstream URLs normalised and distinct, names well-formed and unique,
 * every referenced version present, and no version has a restricted upstream (link-local, cloud metadata,
 * unspecified: upstream-target.ts) unless it sets `allowRestrictedUpstreams: true`.
 *
 * Operations never mutate their input. Each returns a new table with generation + 1, or the very same
 * table object (===) when the request changes nothing, so callers can skip the write. Invalid requests
 * throw ProximationError with a code and a message that says what to do:
 * ERR_UNKNOWN_SITE, ERR_UNKNOWN_VERSION, ERR_SITE_EXISTS, ERR_HOST_TAKEN, ERR_TAG_PREFIX_TAKEN,
 * ERR_VERSION_EXISTS, ERR_VERSION_ACTIVE, ERR_NO_ROLLBACK, ERR_NO_SITE_FOR_TAG, ERR_INVALID_SITE_NAME,
 * ERR_INVALID_VERSION_NAME, ERR_INVALID_TAG_PREFIX, ERR_INVALID_HOSTNAME, ERR_NO_HOSTS,
 * ERR_INVALID_UPSTREAM, ERR_RESTRICTED_UPSTREAM, ERR_INVALID_HSTS, ERR_INVALID_ARGUMENT, ERR_WILDCARD_NEEDS_DNS01, and for guarded changes (TrafficGuard)
 * ERR_UNCHECKED_UPSTREAMS and ERR_SUPERSEDED.
 *
 * `RoutingTableChange` describes each operation as plain JSON-compatible data (with its zod schema,
 * `routingTableChangeSchema`) and `applyRoutingTableChange` applies one, so a change can be sent to
 * whoever holds the table (the file under its lock, or the proxy's admin API) and the guards are
 * evaluated there, on the current table. `upstreamsGainingTraffic` says which upstreams a change would
 * newly send traffic to, so whoever applies it can health-check them first (health-gate.ts).
 */
import * as z from 'zod';
import { ProximationError } from './errors.js';
import { inspectHostname, normalizeHostname } from './hostname.js';
import { isWildcardHost, wildcardProblem } from './wildcard-host.js';
import { parseNetwork } from './networks.js';
import { hstsHeaderValue, hstsProblems, normalizeHsts, sameHsts, type HstsPolicy } from './hsts.js';
import { urlParseProblem } from './url-text.js';
import { parseJsonText } from './json-text.js';
import { UPSTREAM_SCHEME_NAMES, originOf, specialFormOf } from './upstream-origin.js';
import { restrictedTargetProblem } from './upstream-target.js';
import { describeIssues, valueAt } from './validation-issues.js';
import { MAX_LEASE_MS, MIN_LEASE_MS, checkLease, identityProblem, memberExpiresAt, type MemberClock } from './members.js';

export interface SiteVersion {
  readonly name: string;
  /** Normalised origins such as `http://10.0.1.7:8080`. */
  readonly upstreams: readonly string[];
  /** ISO-8601 UTC timestamp. */
  readonly registeredAt: string;
  /** The operator's opt-in to upstreams refused by default (see upstream-target.ts); absent: refused. */
  readonly allowRestrictedUpstreams?: true;
  /**
   * The upstreams that registered themselves with a lease (members.ts); each is also in `upstreams`.
   * Absent: none. Present and empty: every member left, so `upstreams` may be empty too.
   */
  readonly members?: readonly VersionMember[];
}

/** An upstream that registered itself: who it is and how long its lease runs without renewal. */
export interface VersionMember {
  readonly upstream: string;
  /** The ECS task ARN, else host:pid of whoever runs the app. */
  readonly identity: string;
  readonly leaseMs: number;
  /** ISO-8601 UTC; the lease runs from here until a renewal is seen. */
  readonly joinedAt: string;
}

export interface Site {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly tagPrefix?: string;
  /** Strict-Transport-Security for the site's HTTPS responses; absent: none. */
  readonly hsts?: HstsPolicy;
  /** How the CA validates the site's names; absent: the proxy's PROXIMATION_ACME_CHALLENGE. */
  readonly challenge?: SiteChallenge;
  /** A host per version, `<version>.<domain>`; absent: none. */
  readonly preview?: SitePreview;
  readonly activeVersion: string | null;
  /** Previously active versions, most recent last. */
  readonly history: readonly string[];
  /** In registration order, newest last. */
  readonly versions: readonly SiteVersion[];
}

export interface RoutingTable {
  readonly schemaVersion: 1;
  readonly generation: number;
  readonly sites: readonly Site[];
}

/**
 * Preview hosts: every version of the site at `<version, lower case>.<domain>`, active or not, under one
 * wildcard certificate for `*.<domain>`. Without `networks` and `token` anyone may use them; with either,
 * a client must be in one of `networks` (CIDR, the client as X-Forwarded-For from trusted proxies tells)
 * or present the proxy's admin token (`token: true`).
 */
export interface SitePreview {
  readonly domain: string;
  readonly networks?: readonly string[];
  readonly token?: boolean;
}

export const SITE_CHALLENGES = ['http-01', 'tls-alpn-01', 'dns-01'] as const;
export type SiteChallenge = (typeof SITE_CHALLENGES)[number];

/**
 * What the certificates of the proxies that serve the table are ordered with, for the rules that depend
 * on it: a wildcard host needs DNS-01 (the site's challenge, else `challenge`), unless the issuer is the
 * local CA, which needs no challenge.
 */
export interface IssuancePolicy {
  readonly issuer: 'local' | 'acme';
  readonly challenge: SiteChallenge;
}

export const ROUTING_TABLE_SCHEMA_VERSION = 1;
export const MAX_HISTORY = 20;

interface NameRule {
  readonly what: string;
  readonly code: string;
  readonly pattern: RegExp;
  readonly maxLength: number;
  readonly description: string;
}

const SITE_NAME: NameRule = {
  what: 'site name',
  code: 'ERR_INVALID_SITE_NAME',
  pattern: /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
  maxLength: 63,
  description: 'use 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
};
const VERSION_NAME: NameRule = {
  what: 'version name',
  code: 'ERR_INVALID_VERSION_NAME',
  pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  maxLength: 128,
  description: 'use 1-128 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
};
const TAG_PREFIX: NameRule = {
  what: 'tag prefix',
  code: 'ERR_INVALID_TAG_PREFIX',
  pattern: /^[A-Za-z0-9._-]+$/,
  maxLength: Number.MAX_SAFE_INTEGER,
  description: 'use one or more characters of A-Z, a-z, 0-9, ".", "_" and "-"',
};
const UPSTREAM_EXAMPLE = 'give an origin such as http://10.0.1.7:8080';
const RESTRICTED_OPT_IN =
  'it is refused unless the version opts in with "allowRestrictedUpstreams": true (deploy register --allow-restricted-upstreams), for a service that really lives there';

// ---------------------------------------------------------------------------------------------------
// Schema and validation

const nameSchema = (rule: NameRule) => z.string().max(rule.maxLength, rule.description).regex(rule.pattern, rule.description);

/** A string that must already be in the normal form `inspect` returns; otherwise the issue says why or what to write. */
const normalFormSchema = (inspect: (value: string) => { value: string } | { problem: string }) =>
  z.string().superRefine((value, ctx) => {
    const result = inspect(value);
    if ('problem' in result) {
      ctx.addIssue({ code: 'custom', message: result.problem, input: value });
    } else if (result.value !== value) {
      ctx.addIssue({ code: 'custom', message: `not in normal form; write ${JSON.stringify(result.value)}`, input: value });
    }
  });

const hostSchema = normalFormSchema((value) => {
  const result = inspectHostname(value, true, true);
  if (!('hostname' in result)) return { problem: `${result.problem}; use a plain DNS name such as app.example.com, or *.example.com for a wildcard` };
  const wildcard = wildcardProblem(result.hostname);
  return wildcard === undefined ? { value: result.hostname } : { problem: wildcard };
});
const upstreamSchema = normalFormSchema((value) => {
  const result = inspectUpstream(value);
  return 'origin' in result ? { value: result.origin } : { problem: `${result.problem}; ${UPSTREAM_EXAMPLE}` };
});

const networkSchema = normalFormSchema((value) => {
  const network = parseNetwork(value);
  return network === undefined
    ? { problem: 'not an IP address or CIDR block such as 10.0.0.0/16 or fd00::/8' }
    : { value: network.prefix === (network.family === 'ipv4' ? 32 : 128) && !value.includes('/') ? network.address : `${network.address}/${network.prefix}` };
});

const previewSchema = z.strictObject({
  domain: normalFormSchema((value) => {
    const result = inspectHostname(value, false);
    if (!('hostname' in result)) return { problem: `${result.problem}; use a domain such as preview.example.com` };
    const wildcard = wildcardProblem(`*.${result.hostname}`);
    return wildcard === undefined ? { value: result.hostname } : { problem: wildcard };
  }),
  networks: z.array(networkSchema).min(1, 'list at least one network, or leave the field out').optional(),
  token: z.boolean().optional(),
});

const ISO_TIMESTAMP = 'must be an ISO-8601 UTC timestamp such as 2026-11-25T10:00:00.000Z';

const memberSchema = z.strictObject({
  upstream: upstreamSchema,
  identity: z.string().refine((value) => identityProblem(value) === undefined, identityProblem('') ?? ''),
  leaseMs: z.int().min(MIN_LEASE_MS, `a lease is at least ${MIN_LEASE_MS} ms`).max(MAX_LEASE_MS, `a lease is at most ${MAX_LEASE_MS} ms (1 day)`),
  joinedAt: z.iso.datetime({ error: ISO_TIMESTAMP }),
});

const siteVersionSchema = z.strictObject({
  name: nameSchema(VERSION_NAME),
  upstreams: z.array(upstreamSchema),
  registeredAt: z.iso.datetime({ error: ISO_TIMESTAMP }),
  allowRestrictedUpstreams: z.literal(true, { error: 'must be true, or left out' }).optional(),
  members: z.array(memberSchema).optional(),
}).superRefine((version, ctx) => {
  // Only a version whose members all left may have no upstream.
  if (version.upstreams.length === 0 && version.members === undefined) {
    ctx.addIssue({ code: 'custom', path: ['upstreams'], message: `a version needs at least one upstream; ${UPSTREAM_EXAMPLE}`, input: version.upstreams });
  }
  const seen = new Set<string>();
  version.members?.forEach((member, m) => {
    if (!version.upstreams.includes(member.upstream)) {
      ctx.addIssue({ code: 'custom', path: ['members', m, 'upstream'], message: 'a member must be one of the version\'s upstreams', input: member.upstream });
    }
    if (seen.has(member.upstream)) ctx.addIssue({ code: 'custom', path: ['members', m, 'upstream'], message: 'member already listed', input: member.upstream });
    seen.add(member.upstream);
  });
  if (version.allowRestrictedUpstreams === true) return;
  version.upstreams.forEach((upstream, u) => {
    const problem = restrictedTargetProblem(upstream);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['upstreams', u], message: `${problem}; ${RESTRICTED_OPT_IN}`, input: upstream });
  });
});

/** The shape of an HSTS policy; the routing table also checks its rules, a change leaves them to the operation. */
const hstsShapeSchema = z.strictObject({ maxAge: z.number(), includeSubDomains: z.boolean().optional(), preload: z.boolean().optional() });

const hstsSchema = hstsShapeSchema.superRefine((policy, ctx) => {
  for (const problem of hstsProblems(policy)) ctx.addIssue({ code: 'custom', path: [problem.field], message: problem.message, input: policy[problem.field] });
});

const siteSchema = z.strictObject({
  name: nameSchema(SITE_NAME),
  hosts: z.array(hostSchema).min(1, 'a site needs at least one host'),
  tagPrefix: nameSchema(TAG_PREFIX).optional(),
  hsts: hstsSchema.optional(),
  challenge: z.enum(SITE_CHALLENGES, { error: `must be one of ${SITE_CHALLENGES.join(', ')}` }).optional(),
  preview: previewSchema.optional(),
  activeVersion: z.string().nullable(),
  history: z.array(z.string()).max(MAX_HISTORY, `at most ${MAX_HISTORY} entries are kept`),
  versions: z.array(siteVersionSchema),
});

const routingTableSchema = z
  .strictObject({
    schemaVersion: z.literal(ROUTING_TABLE_SCHEMA_VERSION, { error: `must be ${ROUTING_TABLE_SCHEMA_VERSION}` }),
    generation: z.int().min(0, 'must be a non-negative integer'),
    sites: z.array(siteSchema),
  })
  .superRefine((table, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message, input: valueAt(table, path) });
    const firstSeen = (seen: Map<string, string>, key: string, where: string): string | undefined => {
      const earlier = seen.get(key);
      if (earlier === undefined) seen.set(key, where);
      return earlier;
    };
    const siteNames = new Map<string, string>();
    const hosts = new Map<string, string>();
    const prefixes = new Map<string, string>();
    table.sites.forEach((site, s) => {
      const at = `sites[${s}]`;
      const sameName = firstSeen(siteNames, site.name, `${at}.name`);
      if (sameName !== undefined) issue(['sites', s, 'name'], `site name already used at ${sameName}; site names must be unique`);
      site.hosts.forEach((host, h) => {
        const owner = firstSeen(hosts, host, `${at}.hosts[${h}]`);
        if (owner !== undefined) issue(['sites', s, 'hosts', h], `host already listed at ${owner}; a host belongs to one site only`);
      });
      if (site.tagPrefix !== undefined) {
        const owner = firstSeen(prefixes, site.tagPrefix, `${at}.tagPrefix`);
        if (owner !== undefined) issue(['sites', s, 'tagPrefix'], `tag prefix already used at ${owner}; tag prefixes must be unique`);
      }
      const versions = new Map<string, string>();
      site.versions.forEach((version, v) => {
        const same = firstSeen(versions, version.name, `${at}.versions[${v}].name`);
        if (same !== undefined) issue(['sites', s, 'versions', v, 'name'], `version name already used at ${same}; version names must be unique within a site`);
        const upstreams = new Map<string, string>();
        version.upstreams.forEach((upstream, u) => {
          const earlier = firstSeen(upstreams, upstream, `${at}.versions[${v}].upstreams[${u}]`);
          if (earlier !== undefined) issue(['sites', s, 'versions', v, 'upstreams', u], `upstream already listed at ${earlier}`);
        });
      });
      if (site.preview !== undefined) {
        const labels = new Map<string, string>();
        site.versions.forEach((version, v) => {
          const problem = previewLabelProblem(version.name);
          if (problem !== undefined) issue(['sites', s, 'versions', v, 'name'], `${problem}, and the site has preview hosts`);
          const same = firstSeen(labels, version.name.toLowerCase(), `${at}.versions[${v}].name`);
          if (same !== undefined) issue(['sites', s, 'versions', v, 'name'], `the same preview host as ${same} (names are compared in lower case)`);
        });
      }
      if (site.activeVersion !== null && !versions.has(site.activeVersion)) {
        issue(['sites', s, 'activeVersion'], 'not one of the site\'s versions; use null or the name of a version in "versions"');
      }
      site.history.forEach((name, i) => {
        if (!versions.has(name)) issue(['sites', s, 'history', i], 'not one of the site\'s versions; history may only name versions in "versions"');
      });
    });
  });

export function parseRoutingTable(text: string, source: string): RoutingTable {
  return validateRoutingTable(parseJsonText(text, source, 'ERR_ROUTES_INVALID'), source);
}

export function validateRoutingTable(value: unknown, source: string): RoutingTable {
  if (typeof value === 'object' && value !== null && 'schemaVersion' in value) {
    const version = value.schemaVersion;
    if (Number.isInteger(version) && (version as number) > ROUTING_TABLE_SCHEMA_VERSION) {
      throw new ProximationError(
        'ERR_ROUTES_NEWER_SCHEMA',
        `${source} has schemaVersion ${version as number}: it was written by a newer proximation; upgrade proximation/deploy ` +
          `(this version understands schemaVersion ${ROUTING_TABLE_SCHEMA_VERSION}).`,
      );
    }
  }
  const result = routingTableSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw new ProximationError('ERR_ROUTES_INVALID', describeTableIssues(result.error.issues, value, source));
}

function describeTableIssues(issues: readonly z.core.$ZodIssue[], root: unknown, source: string): string {
  return `Invalid routing table ${source}: ${describeIssues(issues, root)}. Fix the file by hand or restore it from a backup.`;
}

/** Pretty-printed JSON (2-space indent, trailing newline), fields in the documented order. */
export function serializeRoutingTable(table: RoutingTable): string {
  const canonical = {
    schemaVersion: table.schemaVersion,
    generation: table.generation,
    sites: table.sites.map((site) => ({
      name: site.name,
      hosts: site.hosts,
      ...(site.tagPrefix === undefined ? {} : { tagPrefix: site.tagPrefix }),
      ...(site.hsts === undefined ? {} : { hsts: serializeHsts(site.hsts) }),
      ...(site.challenge === undefined ? {} : { challenge: site.challenge }),
      ...(site.preview === undefined ? {} : { preview: serializePreview(site.preview) }),
      activeVersion: site.activeVersion,
      history: site.history,
      versions: site.versions.map((v) => ({
        name: v.name,
        upstreams: v.upstreams,
        registeredAt: v.registeredAt,
        ...(v.allowRestrictedUpstreams === true ? { allowRestrictedUpstreams: true } : {}),
        ...(v.members === undefined
          ? {}
          : { members: v.members.map((m) => ({ upstream: m.upstream, identity: m.identity, leaseMs: m.leaseMs, joinedAt: m.joinedAt })) }),
      })),
    })),
  };
  return `${JSON.stringify(canonical, null, 2)}\n`;
}

function serializePreview(preview: SitePreview): SitePreview {
  return {
    domain: preview.domain,
    ...(preview.networks === undefined ? {} : { networks: preview.networks }),
    ...(preview.token === undefined ? {} : { token: preview.token }),
  };
}

/** The policy's fields in the documented order; flags kept as written (a hand-written false stays). */
function serializeHsts(hsts: HstsPolicy): HstsPolicy {
  return {
    maxAge: hsts.maxAge,
    ...(hsts.includeSubDomains === undefined ? {} : { includeSubDomains: hsts.includeSubDomains }),
    ...(hsts.preload === undefined ? {} : { preload: hsts.preload }),
  };
}

export function emptyRoutingTable(): RoutingTable {
  return { schemaVersion: ROUTING_TABLE_SCHEMA_VERSION, generation: 0, sites: [] };
}

// ---------------------------------------------------------------------------------------------------
// Input normalisation shared by operations and validation

/** An upstream URL (see upstream-origin.ts for the schemes) with host and optional port, no credentials/path/query/fragment → its origin. */
export function normalizeUpstreamUrl(input: string, field: string): string {
  const result = inspectUpstream(input);
  if ('origin' in result) return result.origin;
  throw new ProximationError('ERR_INVALID_UPSTREAM', `Invalid upstream ${JSON.stringify(input)} for ${field}: ${result.problem}; ${UPSTREAM_EXAMPLE}.`);
}

function inspectUpstream(input: string): { origin: string } | { problem: string } {
  // The URL parser silently drops tabs and newlines anywhere and trims spaces: reject them instead.
  if (/[\s\u0000-\u001f\u007f]/.test(input)) return { problem: 'it contains whitespace or control characters' };
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(input)) return { problem: `it needs a scheme (${UPSTREAM_SCHEME_NAMES}) and :// in front of the host` };
  let special: ReturnType<typeof specialFormOf>;
  try {
    special = specialFormOf(input);
  } catch {
    return { problem: urlParseProblem(input) };
  }
  if (special === undefined) return { problem: `the scheme must be ${UPSTREAM_SCHEME_NAMES}, not ${input.slice(0, input.indexOf(':')).toLowerCase()}` };
  const { scheme, url } = special;
  if (url.username !== '' || url.password !== '') return { problem: 'it must not contain credentials' };
  if (url.pathname !== '/') return { problem: `it must not have a path (${url.pathname})` };
  if (url.search !== '' || url.hash !== '') return { problem: 'it must not have a query or fragment' };
  if (url.port === '0') return { problem: 'port 0 cannot be connected to' };
  return { origin: originOf(scheme, url) };
}

export function defaultTagPrefix(siteName: string): string | undefined {
  switch (siteName) {
    case 'dev':
      return 'devbuild-';
    case 'prod':
      return 'release-';
    default:
      return undefined;
  }
}

/** Throws ERR_INVALID_VERSION_NAME unless `name` is a valid version name (for checks that need a valid one first). */
export function checkVersionName(name: string): void {
  checkName(VERSION_NAME, name);
}

function checkName(rule: NameRule, value: string): void {
  if (value.length > rule.maxLength || !rule.pattern.test(value)) {
    throw new ProximationError(rule.code, `Invalid ${rule.what} ${JSON.stringify(value)}: ${rule.description}.`);
  }
}

const PREVIEW_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Why `version`, lower-cased, cannot be the first label of a preview host; undefined when it can. */
export function previewLabelProblem(version: string): string | undefined {
  const label = version.toLowerCase();
  if (label.length > 63) return `"${label}" is longer than 63 characters, the most a DNS label may have`;
  if (!PREVIEW_LABEL.test(label)) return `"${label}" is not a DNS label (a-z, 0-9 and "-", not starting or ending with "-"; no "." or "_")`;
  return undefined;
}

/** The preview host of `version` of `site`; undefined when the site has no preview domain. */
export function previewHost(site: Site, version: string): string | undefined {
  return site.preview === undefined ? undefined : `${version.toLowerCase()}.${site.preview.domain}`;
}

/** The names `site` needs certificates for: its hosts, and `*.<preview domain>` for every preview host. */
export function certificateNames(site: Site): readonly string[] {
  return site.preview === undefined ? site.hosts : [...site.hosts, `*.${site.preview.domain}`];
}

/** Every version of `site` must make a distinct preview label once it has a preview domain. */
function checkPreviewLabels(site: Site, domain: string, versions: readonly string[]): void {
  const seen = new Map<string, string>();
  for (const version of versions) {
    const problem = previewLabelProblem(version);
    if (problem !== undefined) {
      throw new ProximationError(
        'ERR_INVALID_VERSION_NAME',
        `Version ${site.name}/${version} cannot have a preview host under ${domain}: ${problem}. ` +
          'Register it under a name that is a DNS label (such as build-42), or remove it before setting the preview domain.',
      );
    }
    const earlier = seen.get(version.toLowerCase());
    if (earlier !== undefined) {
      throw new ProximationError(
        'ERR_INVALID_VERSION_NAME',
        `Versions ${site.name}/${earlier} and ${site.name}/${version} would share the preview host ${version.toLowerCase()}.${domain} (names are compared in lower case); remove one or register under another name.`,
      );
    }
    seen.set(version.toLowerCase(), version);
  }
}

function normalizePreview(preview: SitePreview, site: string): SitePreview {
  const domain = normalizeHostname(preview.domain, { field: `the preview domain of site "${site}"` });
  const problem = wildcardProblem(`*.${domain}`);
  if (problem !== undefined) throw new ProximationError('ERR_INVALID_HOSTNAME', `Invalid preview domain ${JSON.stringify(preview.domain)} for site "${site}": ${problem}.`);
  const networks = preview.networks?.map((entry) => {
    const network = parseNetwork(entry);
    if (network === undefined) {
      throw new ProximationError('ERR_INVALID_ARGUMENT', `Invalid preview network ${JSON.stringify(entry)} for site "${site}": give an IP address or CIDR block such as 10.0.0.0/16 or fd00::/8.`);
    }
    return entry.includes('/') ? `${network.address}/${network.prefix}` : network.address;
  });
  return {
    domain,
    ...(networks === undefined || networks.length === 0 ? {} : { networks: distinct(networks) }),
    ...(preview.token === true ? { token: true } : {}),
  };
}

function samePreview(a: SitePreview | undefined, b: SitePreview | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.domain === b.domain && sameSet(a.networks ?? [], b.networks ?? []) && (a.token === true) === (b.token === true);
}

function distinct(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((value) => set.has(value));
}

function list(values: readonly string[]): string {
  return values.join(', ');
}

// ---------------------------------------------------------------------------------------------------
// Lookups

export function findSite(table: RoutingTable, name: string): Site {
  const site = table.sites.find((s) => s.name === name);
  if (site !== undefined) return site;
  const known =
    table.sites.length === 0
      ? 'the routing table has no sites yet; add one first (deploy site add)'
      : `known sites: ${list(table.sites.map((s) => s.name))}`;
  throw new ProximationError('ERR_UNKNOWN_SITE', `Unknown site ${JSON.stringify(name)}: ${known}.`);
}

export function findVersion(site: Site, name: string): SiteVersion {
  const version = site.versions.find((v) => v.name === name);
  if (version !== undefined) return version;
  const names = site.versions.map((v) => v.name);
  const known =
    names.length === 0
      ? 'it has no versions yet; register one first (deploy register)'
      : `its versions (newest last): ${names.length > 10 ? `..., ${list(names.slice(-10))}` : list(names)}`;
  throw new ProximationError('ERR_UNKNOWN_VERSION', `Site "${site.name}" has no version ${JSON.stringify(name)}: ${known}.`);
}

/** The site whose tagPrefix is the longest prefix of `tag` (the tag must be longer than the prefix). */
export function siteForTag(table: RoutingTable, tag: string): Site {
  let best: { site: Site; prefix: string } | undefined;
  for (const site of table.sites) {
    const prefix = site.tagPrefix;
    if (prefix !== undefined && tag.length > prefix.length && tag.startsWith(prefix) && prefix.length > (best?.prefix.length ?? 0)) {
      best = { site, prefix };
    }
  }
  if (best !== undefined) return best.site;
  const prefixes = table.sites.flatMap((s) => (s.tagPrefix === undefined ? [] : [`${s.tagPrefix} (site ${s.name})`]));
  const known = prefixes.length === 0 ? 'no site has a tag prefix' : `known tag prefixes: ${list(prefixes)}`;
  throw new ProximationError(
    'ERR_NO_SITE_FOR_TAG',
    `No site's tag prefix matches tag ${JSON.stringify(tag)} (${known}). Name the site and version explicitly, or give the site a matching tag prefix.`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Operations

function nextGeneration(table: RoutingTable, sites: readonly Site[]): RoutingTable {
  return { schemaVersion: ROUTING_TABLE_SCHEMA_VERSION, generation: table.generation + 1, sites };
}

/** Applies `change` to the named site; the same table when `change` returns the same site. */
function updateSite(table: RoutingTable, name: string, change: (site: Site) => Site): RoutingTable {
  const site = findSite(table, name);
  const updated = change(site);
  return updated === site ? table : nextGeneration(table, table.sites.map((s) => (s === site ? updated : s)));
}

/**
 * Conditions under which a change may send traffic somewhere new; checked against the table the change
 * is applied to, so they hold even when other writers changed it since the caller last read it.
 */
const trafficGuardSchema = z
  .strictObject({
    /**
     * Upstreams that passed a health check. When given, a change that would send traffic to any other
     * upstream (any upstream of a version it activates, or one it adds to the active version) throws
     * ERR_UNCHECKED_UPSTREAMS and changes nothing.
     */
    checkedUpstreams: z.array(z.string()).readonly().optional(),
    /**
     * The site's active version when the caller decided to activate (null: none was). If a version
     * registered after the one being activated has become active since, the change throws ERR_SUPERSEDED
     * instead of replacing a newer version by an older one (two deploys whose health checks finish out
     * of order). Re-activating an older version on purpose works: nothing changed since the caller read.
     */
    activeBefore: z.string().nullable().optional(),
  })
  .readonly();
export type TrafficGuard = z.output<typeof trafficGuardSchema>;

/**
 * The upstreams `after` (a site as a change left it) sends traffic to that `before` did not: those of a
 * newly activated version, or those added to the version that stays active.
 */
function newlyServing(before: Site, after: Site): readonly string[] {
  const target = after.activeVersion;
  if (target === null || after === before) return [];
  const serving = before.activeVersion === target ? findVersion(before, target).upstreams : [];
  return findVersion(after, target).upstreams.filter((u) => !serving.includes(u));
}

/** `after` (the site changed by an operation), unless it breaks `guard`; see TrafficGuard. */
function guardTraffic(before: Site, after: Site, guard: TrafficGuard | undefined): Site {
  const target = after.activeVersion;
  if (guard === undefined || after === before || target === null) return after;
  const current = before.activeVersion;
  if (current !== target && guard.activeBefore !== undefined && current !== null && current !== guard.activeBefore) {
    const position = (name: string) => after.versions.findIndex((v) => v.name === name);
    if (position(current) > position(target)) {
      throw new ProximationError(
        'ERR_SUPERSEDED',
        `Did not activate ${after.name}/${target}: ${after.name}/${current}, registered after it, became active meanwhile (another deploy activated it). ` +
          `${target} stays registered; to make it active anyway, activate it explicitly (deploy activate --site ${after.name} --version ${target}).`,
      );
    }
  }
  const checked = guard.checkedUpstreams;
  if (checked !== undefined) {
    const unchecked = newlyServing(before, after).filter((u) => !checked.includes(u));
    if (unchecked.length > 0) {
      throw new ProximationError(
        'ERR_UNCHECKED_UPSTREAMS',
        `Not sending traffic for ${after.name}/${target} to upstreams that have not passed a health check: ${list(unchecked)}. Check them, then try again.`,
      );
    }
  }
  return after;
}

function withActive(site: Site, version: string): Site {
  if (site.activeVersion === version) return site;
  const history = site.activeVersion === null ? site.history : [...site.history, site.activeVersion].slice(-MAX_HISTORY);
  return { ...site, activeVersion: version, history };
}

export interface AddSiteRequest {
  name: string;
  hosts: readonly string[];
  /** Default: `defaultTagPrefix(name)`. */
  tagPrefix?: string;
  /** HSTS for the new site; null: none. Left out, an existing site's HSTS is not compared (see addSite). */
  hsts?: HstsPolicy | null;
  /** The site's ACME challenge; left out: the proxy's, and an existing site's is not compared. */
  challenge?: SiteChallenge;
  /** Preview hosts for the site's versions; left out: none, and an existing site's are not compared. */
  preview?: SitePreview;
}

/**
 * Adds a site without versions; a no-op if it exists with the same hosts and tag prefix (and the same
 * HSTS, when the request gives one: provisioning scripts written before HSTS must keep passing once
 * HSTS was set with setSiteHsts).
 */
export function addSite(table: RoutingTable, request: AddSiteRequest, policy?: IssuancePolicy): RoutingTable {
  const { name } = request;
  checkName(SITE_NAME, name);
  if (request.hosts.length === 0) {
    throw new ProximationError('ERR_NO_HOSTS', `Site "${name}" needs at least one host (the names it is served under, such as app.example.com).`);
  }
  const hosts = distinct(request.hosts.map((host) => normalizeSiteHost(host, name)));
  if (request.challenge !== undefined && !SITE_CHALLENGES.includes(request.challenge)) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `Site "${name}": challenge ${JSON.stringify(request.challenge)} is not one of ${SITE_CHALLENGES.join(', ')}.`);
  }
  const preview = request.preview === undefined ? undefined : normalizePreview(request.preview, name);
  checkWildcardIssuance(name, preview === undefined ? hosts : [...hosts, `*.${preview.domain}`], request.challenge, policy);
  const tagPrefix = request.tagPrefix ?? defaultTagPrefix(name);
  if (tagPrefix !== undefined) checkName(TAG_PREFIX, tagPrefix);
  const hsts = request.hsts === undefined || request.hsts === null ? undefined : normalizeHsts(request.hsts, name);

  const existing = table.sites.find((s) => s.name === name);
  if (existing !== undefined) {
    const sameDefinition =
      sameSet(existing.hosts, hosts) &&
      existing.tagPrefix === tagPrefix &&
      (request.challenge === undefined || request.challenge === existing.challenge) &&
      (preview === undefined || samePreview(existing.preview, preview));
    if (sameDefinition && (request.hsts === undefined || sameHsts(existing.hsts, hsts))) return table;
    if (sameDefinition) {
      throw new ProximationError(
        'ERR_SITE_EXISTS',
        `Site "${name}" already exists with ${describeHsts(existing.hsts)}. Change its HSTS setting with: deploy site hsts ${name} --max-age <duration>|off.`,
      );
    }
    const prefix = existing.tagPrefix === undefined ? 'no tag prefix' : `tag prefix "${existing.tagPrefix}"`;
    throw new ProximationError(
      'ERR_SITE_EXISTS',
      `Site "${name}" already exists with hosts ${list(existing.hosts)} and ${prefix}. Choose another name, or remove the site before adding it again differently.`,
    );
  }
  for (const host of hosts) {
    const owner = table.sites.find((s) => s.hosts.includes(host));
    if (owner !== undefined) {
      throw new ProximationError(
        'ERR_HOST_TAKEN',
        `Host "${host}" already belongs to site "${owner.name}"; a host routes to one site only. Use another host, or remove site "${owner.name}" first.`,
      );
    }
  }
  const prefixOwner = tagPrefix === undefined ? undefined : table.sites.find((s) => s.tagPrefix === tagPrefix);
  if (prefixOwner !== undefined) {
    throw new ProximationError(
      'ERR_TAG_PREFIX_TAKEN',
      `Tag prefix "${tagPrefix}" is already used by site "${prefixOwner.name}"; tags must identify one site. Give site "${name}" another tag prefix.`,
    );
  }
  const site: Site = {
    name,
    hosts,
    ...(tagPrefix === undefined ? {} : { tagPrefix }),
    ...(hsts === undefined ? {} : { hsts }),
    ...(request.challenge === undefined ? {} : { challenge: request.challenge }),
    ...(preview === undefined ? {} : { preview }),
    activeVersion: null,
    history: [],
    versions: [],
  };
  return nextGeneration(table, [...table.sites, site]);
}

/** A site's host: a hostname, or a wildcard `*.<registered domain>`. */
function normalizeSiteHost(host: string, site: string): string {
  const normal = normalizeHostname(host, { allowWildcard: true, refuseAddresses: true, field: `the hosts of site "${site}"` });
  const problem = wildcardProblem(normal);
  if (problem !== undefined) throw new ProximationError('ERR_INVALID_HOSTNAME', `Invalid host ${JSON.stringify(host)} for site "${site}": ${problem}.`);
  return normal;
}

/** Wildcard certificates are validated over DNS-01 only; the local CA needs no validation. */
function checkWildcardIssuance(site: string, hosts: readonly string[], challenge: SiteChallenge | undefined, policy: IssuancePolicy | undefined): void {
  const wildcards = hosts.filter(isWildcardHost);
  if (wildcards.length === 0 || policy === undefined || policy.issuer === 'local') return;
  const effective = challenge ?? policy.challenge;
  if (effective === 'dns-01') return;
  throw new ProximationError(
    'ERR_WILDCARD_NEEDS_DNS01',
    `Site "${site}": ${list(wildcards)} ${wildcards.length === 1 ? 'is a wildcard' : 'are wildcards'}, and a CA validates wildcards only over dns-01, ` +
      `but the site's certificates would be validated over ${effective}. Give the site --challenge dns-01 (with a DNS provider configured on the proxies: PROXIMATION_DNS_PROVIDER), or list the hosts one by one.`,
  );
}

function describeHsts(hsts: HstsPolicy | undefined): string {
  return hsts === undefined ? 'no HSTS' : `HSTS "${hstsHeaderValue(hsts)}"`;
}

/** Sets the site's HSTS policy (null: none, the header is no longer sent); the same table if it is already so. */
export function setSiteHsts(table: RoutingTable, site: string, hsts: HstsPolicy | null): RoutingTable {
  return updateSite(table, site, (s) => {
    const policy = hsts === null ? undefined : normalizeHsts(hsts, s.name);
    if (sameHsts(s.hsts, policy)) return s;
    const { hsts: _replaced, ...rest } = s;
    return policy === undefined ? rest : { ...rest, hsts: policy };
  });
}

/**
 * Gives the site's versions preview hosts under `preview.domain` (null: none any more); the same table if
 * it is already so. Every registered version must make a distinct DNS label (ERR_INVALID_VERSION_NAME).
 */
export function setSitePreview(table: RoutingTable, site: string, preview: SitePreview | null, policy?: IssuancePolicy): RoutingTable {
  return updateSite(table, site, (s) => {
    const next = preview === null ? undefined : normalizePreview(preview, s.name);
    if (samePreview(s.preview, next)) return s;
    const { preview: _replaced, ...rest } = s;
    if (next === undefined) return rest;
    checkPreviewLabels(s, next.domain, s.versions.map((v) => v.name));
    checkWildcardIssuance(s.name, [`*.${next.domain}`], s.challenge, policy);
    return { ...rest, preview: next };
  });
}

export function removeSite(table: RoutingTable, name: string): RoutingTable {
  const site = findSite(table, name);
  return nextGeneration(table, table.sites.filter((s) => s !== site));
}

export interface RegisterVersionRequest {
  site: string;
  version: string;
  upstreams: readonly string[];
  registeredAt: Date;
  /** Make it the active version (the previous one goes onto the history). */
  activate: boolean;
  /** Allow re-registering an existing version with other upstreams. */
  replace?: boolean;
  /**
   * Add the upstreams to an existing version instead (several instances of one version registering
   * themselves); keeps its registration time and place. Not together with `replace`.
   */
  join?: boolean;
  /** Allow upstreams that are refused by default (link-local, cloud metadata, unspecified: upstream-target.ts). */
  allowRestrictedUpstreams?: boolean;
  guard?: TrafficGuard;
  /** The upstreams register themselves: they become members with this identity and lease (members.ts). */
  lease?: MemberLease;
  /** What the writer knows of leases; without it an address held by another identity is never taken over. */
  clock?: MemberClock;
}

export interface MemberLease {
  readonly identity: string;
  readonly leaseMs: number;
}

/**
 * Registers (or with `replace`, re-registers; with `join`, extends) a version. The same version with the
 * same upstreams (with `join`: no new ones) is a no-op, apart from activating it when asked to and not
 * yet active.
 */
export function registerVersion(table: RoutingTable, request: RegisterVersionRequest): RoutingTable {
  const { version } = request;
  if (request.replace === true && request.join === true) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `Registering ${request.site}/${version}: replace and join exclude each other; choose one.`);
  }
  return updateSite(table, request.site, (site) => {
    checkName(VERSION_NAME, version);
    const field = `version ${site.name}/${version}`;
    if (request.upstreams.length === 0) {
      throw new ProximationError('ERR_INVALID_UPSTREAM', `No upstream given for ${field}; ${UPSTREAM_EXAMPLE}.`);
    }
    const upstreams = distinct(request.upstreams.map((url) => normalizeUpstreamUrl(url, field)));
    const allowRestricted = request.allowRestrictedUpstreams === true;
    if (!allowRestricted) {
      for (const upstream of upstreams) {
        const problem = restrictedTargetProblem(upstream);
        if (problem !== undefined) throw new ProximationError('ERR_RESTRICTED_UPSTREAM', `Not registering ${field}: ${problem}; ${RESTRICTED_OPT_IN}.`);
      }
    }
    const optIn = (v: SiteVersion, keep: boolean): SiteVersion => {
      const { allowRestrictedUpstreams: _was, ...rest } = v;
      return allowRestricted || keep ? { ...rest, allowRestrictedUpstreams: true } : rest;
    };
    const existing = site.versions.find((v) => v.name === version);
    const activated = (s: Site) => guardTraffic(site, request.activate ? withActive(s, version) : s, request.guard);
    const lease = request.lease;
    if (lease !== undefined) checkMemberLease(table, site.name, version, upstreams, lease, request.clock);
    const joinedAt = lease === undefined ? undefined : isoTimestamp(request.registeredAt);
    const withLease = (v: SiteVersion): SiteVersion =>
      lease === undefined || joinedAt === undefined
        ? v
        : {
            ...v,
            members: [
              ...(v.members ?? []).filter((m) => !upstreams.includes(m.upstream)),
              ...upstreams.map((upstream) => ({ upstream, identity: lease.identity, leaseMs: lease.leaseMs, joinedAt })),
            ],
          };
    if (existing !== undefined && request.join === true) {
      const joined = distinct([...existing.upstreams, ...upstreams]);
      if (joined.length === existing.upstreams.length && lease === undefined) return activated(site);
      const extended = withLease(optIn({ ...existing, upstreams: joined }, existing.allowRestrictedUpstreams === true));
      return activated({ ...site, versions: site.versions.map((v) => (v === existing ? extended : v)) });
    }
    if (existing !== undefined && sameSet(existing.upstreams, upstreams)) return activated(site);
    if (existing !== undefined && request.replace !== true) {
      throw new ProximationError(
        'ERR_VERSION_EXISTS',
        `Version ${site.name}/${version} is already registered with upstreams ${list(existing.upstreams)}. ` +
          'Register the new upstreams under a new version name, add them to the version (deploy register --join), ' +
          'or replace its upstreams explicitly (deploy register --replace).',
      );
    }
    if (site.preview !== undefined) checkPreviewLabels(site, site.preview.domain, [...site.versions.filter((v) => v !== existing).map((v) => v.name), version]);
    const registered = withLease(optIn({ name: version, upstreams, registeredAt: isoTimestamp(request.registeredAt) }, false));
    return activated({ ...site, versions: [...site.versions.filter((v) => v !== existing), registered] });
  });
}

/**
 * Refuses a lease on an address that a live member of another identity holds, in any version of any
 * site (on awsvpc a stopped task's address goes to the next task soon after). Without a clock every
 * member counts as live.
 */
function checkMemberLease(table: RoutingTable, site: string, version: string, upstreams: readonly string[], lease: MemberLease, clock: MemberClock | undefined): void {
  const field = `version ${site}/${version}`;
  const problem = identityProblem(lease.identity);
  if (problem !== undefined) throw new ProximationError('ERR_INVALID_ARGUMENT', `Invalid member identity ${JSON.stringify(lease.identity)} for ${field}: ${problem}.`);
  checkLease(lease.leaseMs, field);
  for (const s of table.sites) {
    for (const v of s.versions) {
      for (const member of v.members ?? []) {
        if (!upstreams.includes(member.upstream) || member.identity === lease.identity) continue;
        const expiresAt = clock === undefined ? Number.POSITIVE_INFINITY : memberExpiresAt(s.name, v.name, member, clock.renewals);
        if (clock !== undefined && expiresAt <= clock.now) continue;
        throw new ProximationError(
          'ERR_MEMBER_IDENTITY',
          `Not registering ${member.upstream} for ${field} as ${lease.identity}: the address is a member of ${s.name}/${v.name} registered by ` +
            `${member.identity}, whose lease is still running${Number.isFinite(expiresAt) ? ` (until ${new Date(expiresAt).toISOString()})` : ''}. ` +
            'Two tasks cannot hold one address: check that this task really has that address, or deregister the other member first (deploy deregister).',
        );
      }
    }
  }
}

export interface DeregisterRequest {
  site: string;
  version: string;
  upstreams: readonly string[];
  /** Only a member of this identity may be removed (deploy run leaving); absent: whoever registered it. */
  identity?: string;
}

/**
 * Takes upstreams out of a version (a task leaving: `deploy run` on SIGTERM, `deploy deregister`).
 * Upstreams the version does not list change nothing, so leaving twice is harmless. A member of another
 * identity is refused (ERR_MEMBER_IDENTITY). A version may end with no upstream: it then keeps
 * `members: []`, and if it is active its site answers 503 until a member joins.
 */
export function deregisterUpstreams(table: RoutingTable, request: DeregisterRequest): RoutingTable {
  return updateSite(table, request.site, (site) => {
    const existing = findVersion(site, request.version);
    const field = `version ${site.name}/${existing.name}`;
    const leaving = distinct(request.upstreams.map((url) => normalizeUpstreamUrl(url, field))).filter((u) => existing.upstreams.includes(u));
    if (leaving.length === 0) return site;
    for (const member of existing.members ?? []) {
      if (leaving.includes(member.upstream) && request.identity !== undefined && member.identity !== request.identity) {
        throw new ProximationError(
          'ERR_MEMBER_IDENTITY',
          `Not deregistering ${member.upstream} from ${field} as ${request.identity}: it was registered by ${member.identity}. ` +
            'Only the task that registered it may take it out this way; to remove it regardless, run deploy deregister --upstream URL without --upstream-from-ecs.',
        );
      }
    }
    return { ...site, versions: site.versions.map((v) => (v === existing ? withoutUpstreams(v, leaving) : v)) };
  });
}

function withoutUpstreams(version: SiteVersion, leaving: readonly string[]): SiteVersion {
  const upstreams = version.upstreams.filter((u) => !leaving.includes(u));
  const members = (version.members ?? []).filter((m) => !leaving.includes(m.upstream));
  const { members: _was, ...rest } = version;
  return members.length > 0 || upstreams.length === 0 || version.members !== undefined ? { ...rest, upstreams, members } : { ...rest, upstreams };
}

/** Removes every member whose lease ran out by `clock` (and its upstream); the same table when none did. */
export function pruneExpiredMembers(table: RoutingTable, clock: MemberClock): RoutingTable {
  let changed = false;
  const sites = table.sites.map((site) => {
    let siteChanged = false;
    const versions = site.versions.map((version) => {
      const expired = (version.members ?? []).filter((m) => memberExpiresAt(site.name, version.name, m, clock.renewals) <= clock.now).map((m) => m.upstream);
      if (expired.length === 0) return version;
      siteChanged = true;
      return withoutUpstreams(version, expired);
    });
    if (!siteChanged) return site;
    changed = true;
    return { ...site, versions };
  });
  return changed ? nextGeneration(table, sites) : table;
}

function isoTimestamp(date: Date): string {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `registeredAt must be a valid Date, got ${String(date)}.`);
  }
  return date.toISOString();
}

export function activateVersion(table: RoutingTable, site: string, version: string, guard?: TrafficGuard): RoutingTable {
  return updateSite(table, site, (s) => guardTraffic(s, withActive(s, findVersion(s, version).name), guard));
}

/** Re-activates the most recent earlier active version and drops it from the history. */
export function rollback(table: RoutingTable, site: string): RoutingTable {
  return updateSite(table, site, (s) => {
    const history = [...s.history];
    // Entries equal to the active version (possible after versions were removed) are no rollback target.
    while (history.length > 0 && history[history.length - 1] === s.activeVersion) history.pop();
    const target = history.pop();
    if (target === undefined) {
      throw new ProximationError(
        'ERR_NO_ROLLBACK',
        `Site "${s.name}" has no earlier active version to roll back to (its history is empty). Activate a specific version instead.`,
      );
    }
    return { ...s, activeVersion: target, history };
  });
}

/** Removes a version that is not active, and its history entries. */
export function removeVersion(table: RoutingTable, site: string, version: string): RoutingTable {
  return updateSite(table, site, (s) => {
    const removed = findVersion(s, version);
    if (s.activeVersion === version) {
      throw new ProximationError(
        'ERR_VERSION_ACTIVE',
        `Version ${s.name}/${version} is active; activate another version (or roll back) before removing it.`,
      );
    }
    return { ...s, versions: s.versions.filter((v) => v !== removed), history: s.history.filter((h) => h !== version) };
  });
}

/** Keeps the `keep` most recently registered versions plus the active one; drops the rest from versions and history. */
export function pruneVersions(table: RoutingTable, site: string, keep: number): RoutingTable {
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new ProximationError('ERR_INVALID_ARGUMENT', `The number of versions to keep must be a non-negative integer, got ${keep}.`);
  }
  return updateSite(table, site, (s) => {
    const kept = new Set(s.versions.slice(Math.max(0, s.versions.length - keep)).map((v) => v.name));
    if (s.activeVersion !== null) kept.add(s.activeVersion);
    if (kept.size === s.versions.length) return s;
    return { ...s, versions: s.versions.filter((v) => kept.has(v.name)), history: s.history.filter((h) => kept.has(h)) };
  });
}

// ---------------------------------------------------------------------------------------------------
// Changes as data

/**
 * One operation with its arguments, as JSON-compatible data (see the module header). The type is the
 * schema's output, so what an edge accepts (the admin API validates requests with it) and what the
 * operations take cannot drift apart. The schema checks the shape only; the operations judge the values (names, hosts,
 * upstream URLs) with the same errors whoever sent the change.
 */
const previewShapeSchema = z.strictObject({ domain: z.string(), networks: z.array(z.string()).readonly().optional(), token: z.boolean().optional() });

export const routingTableChangeSchema = z
  .discriminatedUnion(
    'op',
    [
      z.strictObject({
        op: z.literal('addSite'),
        site: z.string(),
        hosts: z.array(z.string()).readonly(),
        tagPrefix: z.string().optional(),
        hsts: hstsShapeSchema.nullable().optional(),
        challenge: z.enum(SITE_CHALLENGES).optional(),
        preview: previewShapeSchema.optional(),
      }),
      z.strictObject({ op: z.literal('removeSite'), site: z.string() }),
      z.strictObject({ op: z.literal('setPreview'), site: z.string(), preview: previewShapeSchema.nullable() }),
      z.strictObject({ op: z.literal('setHsts'), site: z.string(), hsts: hstsShapeSchema.nullable() }),
      z.strictObject({
        op: z.literal('registerVersion'),
        site: z.string(),
        version: z.string(),
        upstreams: z.array(z.string()).readonly(),
        activate: z.boolean(),
        replace: z.boolean().optional(),
        join: z.boolean().optional(),
        allowRestrictedUpstreams: z.boolean().optional(),
        guard: trafficGuardSchema.optional(),
        lease: z.strictObject({ identity: z.string(), leaseMs: z.int() }).readonly().optional(),
      }),
      z.strictObject({ op: z.literal('deregister'), site: z.string(), version: z.string(), upstreams: z.array(z.string()).readonly(), identity: z.string().optional() }),
      z.strictObject({ op: z.literal('activateVersion'), site: z.string(), version: z.string(), guard: trafficGuardSchema.optional() }),
      z.strictObject({ op: z.literal('rollback'), site: z.string() }),
      z.strictObject({ op: z.literal('removeVersion'), site: z.string(), version: z.string() }),
      z.strictObject({ op: z.literal('pruneVersions'), site: z.string(), keep: z.int().min(0, 'must be a non-negative integer') }),
    ],
    { error: 'must be one of addSite, removeSite, setHsts, setPreview, registerVersion, deregister, activateVersion, rollback, removeVersion, pruneVersions' },
  )
  .readonly();
export type RoutingTableChange = z.output<typeof routingTableChangeSchema>;

/**
 * The upstreams `change` would send traffic to that get none now, on `table`: those of a version it
 * activates, or those it adds to the active version. Throws what the change itself throws on `table`.
 */
export function upstreamsGainingTraffic(table: RoutingTable, change: RoutingTableChange): readonly string[] {
  const before = table.sites.find((s) => s.name === change.site);
  const after = applyRoutingTableChange(table, change, new Date()).sites.find((s) => s.name === change.site);
  return before === undefined || after === undefined ? [] : newlyServing(before, after);
}

/**
 * Applies `change` like the operation it names; `now` is the registration time of a registered version;
 * `policy`, when the caller knows how the proxies order certificates, judges wildcard hosts. With
 * `clock` (what the writer read of the lease records), a change that changes the table also removes the
 * members whose leases ran out (one write, one generation), and a lease may take over an address whose
 * member expired.
 */
export function applyRoutingTableChange(table: RoutingTable, change: RoutingTableChange, now: Date, policy?: IssuancePolicy, clock?: MemberClock): RoutingTable {
  const next = applyOperation(table, change, now, policy, clock);
  return next === table || clock === undefined ? next : pruneExpiredMembers(next, clock);
}

function applyOperation(table: RoutingTable, change: RoutingTableChange, now: Date, policy: IssuancePolicy | undefined, clock: MemberClock | undefined): RoutingTable {
  switch (change.op) {
    case 'addSite':
      return addSite(table, {
        name: change.site,
        hosts: change.hosts,
        ...(change.tagPrefix === undefined ? {} : { tagPrefix: change.tagPrefix }),
        ...(change.hsts === undefined ? {} : { hsts: change.hsts }),
        ...(change.challenge === undefined ? {} : { challenge: change.challenge }),
        ...(change.preview === undefined ? {} : { preview: change.preview }),
      }, policy);
    case 'removeSite':
      return removeSite(table, change.site);
    case 'setHsts':
      return setSiteHsts(table, change.site, change.hsts);
    case 'setPreview':
      return setSitePreview(table, change.site, change.preview, policy);
    case 'registerVersion':
      return registerVersion(table, {
        site: change.site,
        version: change.version,
        upstreams: change.upstreams,
        activate: change.activate,
        replace: change.replace,
        join: change.join,
        allowRestrictedUpstreams: change.allowRestrictedUpstreams,
        guard: change.guard,
        registeredAt: now,
        ...(change.lease === undefined ? {} : { lease: change.lease }),
        ...(clock === undefined ? {} : { clock }),
      });
    case 'deregister':
      return deregisterUpstreams(table, { site: change.site, version: change.version, upstreams: change.upstreams, ...(change.identity === undefined ? {} : { identity: change.identity }) });
    case 'activateVersion':
      return activateVersion(table, change.site, change.version, change.guard);
    case 'rollback':
      return rollback(table, change.site);
    case 'removeVersion':
      return removeVersion(table, change.site, change.version);
    case 'pruneVersions':
      return pruneVersions(table, change.site, change.keep);
  }
}
