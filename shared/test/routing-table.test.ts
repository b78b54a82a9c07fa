import { describe, expect, it } from 'vitest';
import {
  MAX_HISTORY,
  activateVersion,
  addSite,
  applyRoutingTableChange,
  defaultTagPrefix,
  emptyRoutingTable,
  findSite,
  findVersion,
  normalizeUpstreamUrl,
  parseRoutingTable,
  pruneVersions,
  registerVersion,
  removeSite,
  removeVersion,
  rollback,
  serializeRoutingTable,
  previewHost,
  setSiteHsts,
  setSitePreview,
  siteForTag,
  upstreamsGainingTraffic,
  validateRoutingTable,
} from '../src/routing-table.js';
import type { RoutingTable, RoutingTableChange } from '../src/routing-table.js';

const EXAMPLE = `{
  "schemaVersion": 1,
  "generation": 7,
  "sites": [
    {
      "name": "dev",
      "hosts": [
        "dev.nomsbook.com"
      ],
      "tagPrefix": "devbuild-",
      "activeVersion": "devbuild-42",
      "history": [
        "devbuild-41"
      ],
      "versions": [
        {
          "name": "devbuild-41",
          "upstreams": [
            "http://10.0.1.7:8080"
          ],
          "registeredAt": "2026-11-25T10:00:00.000Z"
        },
        {
          "name": "devbuild-42",
          "upstreams": [
            "http://10.0.1.9:8080",
            "http://10.0.1.10:8080"
          ],
          "registeredAt": "2026-11-25T11:00:00.000Z"
        }
      ]
    }
  ]
}
`;

const AT = new Date('2026-11-25T12:00:00.000Z');

/** Parses EXAMPLE with `edit` applied to the parsed JSON. */
function exampleWith(edit: (json: any) => void): string {
  const json = JSON.parse(EXAMPLE);
  edit(json);
  return JSON.stringify(json);
}

function expectError(action: () => unknown, code: string, ...fragments: string[]): void {
  let caught: unknown;
  try {
    action();
  } catch (err) {
    caught = err;
  }
  expect(caught).toMatchObject({ name: 'ProximationError', code });
  for (const fragment of fragments) expect((caught as Error).message).toContain(fragment);
}

/** A table with sites dev (devbuild-) and prod (release-), dev having versions a (old) and b (active). */
function sample(): RoutingTable {
  let table = emptyRoutingTable();
  table = addSite(table, { name: 'dev', hosts: ['dev.example.com'] });
  table = addSite(table, { name: 'prod', hosts: ['example.com', 'www.example.com'] });
  table = registerVersion(table, { site: 'dev', version: 'a', upstreams: ['http://10.0.0.1:8080'], registeredAt: AT, activate: true });
  table = registerVersion(table, { site: 'dev', version: 'b', upstreams: ['http://10.0.0.2:8080'], registeredAt: AT, activate: true });
  return table;
}

/** Every table an operation returns is valid, serialises and parses back to the same thing. */
function checked(table: RoutingTable): RoutingTable {
  expect(parseRoutingTable(serializeRoutingTable(table), 'round trip')).toEqual(validateRoutingTable(table, 'check'));
  return table;
}

describe('parseRoutingTable', () => {
  it('accepts the documented example and serialises it back byte for byte', () => {
    const table = parseRoutingTable(EXAMPLE, 'routes.json');
    expect(table.generation).toBe(7);
    expect(findSite(table, 'dev').versions[1]!.upstreams).toEqual(['http://10.0.1.9:8080', 'http://10.0.1.10:8080']);
    expect(serializeRoutingTable(table)).toBe(EXAMPLE);
  });

  it('accepts a site without tagPrefix and timestamps without milliseconds', () => {
    const table = parseRoutingTable(
      exampleWith((j) => {
        delete j.sites[0].tagPrefix;
        j.sites[0].versions[0].registeredAt = '2026-11-25T10:00:00Z';
      }),
      'routes.json',
    );
    expect(findSite(table, 'dev').tagPrefix).toBeUndefined();
    expect(serializeRoutingTable(table)).not.toContain('tagPrefix');
  });

  it('reports malformed JSON with the source, line and column', () => {
    expectError(() => parseRoutingTable('{\n  "schemaVersion": 1,\n}', '/le/proximation/routes.json'), 'ERR_ROUTES_INVALID',
      '/le/proximation/routes.json is not valid JSON: trailing comma before "}" at line 3, column 1');
  });

  it('rejects a newer schema version with ERR_ROUTES_NEWER_SCHEMA', () => {
    expectError(() => parseRoutingTable(exampleWith((j) => { j.schemaVersion = 2; j.extra = true; }), 'routes.json'),
      'ERR_ROUTES_NEWER_SCHEMA', 'routes.json has schemaVersion 2', 'upgrade proximation/deploy');
  });

  it.each<[string, (json: any) => void, string]>([
    ['a wrong schema version', (j) => (j.schemaVersion = 0), 'schemaVersion: must be 1 (found 0)'],
    ['a negative generation', (j) => (j.generation = -1), 'generation: must be a non-negative integer (found -1)'],
    ['a fractional generation', (j) => (j.generation = 1.5), 'generation: expected an integer (found 1.5)'],
    ['a missing field', (j) => delete j.sites[0].history, 'sites[0].history: required field is missing'],
    ['a wrongly typed field', (j) => (j.sites[0].hosts = 'dev.nomsbook.com'), 'sites[0].hosts: expected an array (found "dev.nomsbook.com")'],
    ['an unknown field', (j) => (j.sites[0].versions[1].upstream = []), 'sites[0].versions[1].upstream: unknown field'],
    ['an unknown top-level field', (j) => (j.comment = 'x'), 'comment: unknown field'],
    ['a bad site name', (j) => (j.sites[0].name = 'Dev'), 'sites[0].name: use 1-63 characters of a-z, 0-9 and "-"'],
    ['a site name of 64 characters', (j) => (j.sites[0].name = 'a'.repeat(64)), 'sites[0].name: use 1-63 characters'],
    ['no hosts', (j) => (j.sites[0].hosts = []), 'sites[0].hosts: a site needs at least one host (found [])'],
    ['an invalid host', (j) => (j.sites[0].hosts = ['dev..com']), 'sites[0].hosts[0]: it contains ".." (an empty label); use a plain DNS name'],
    ['an IP address as a host', (j) => (j.sites[0].hosts = ['192.0.2.7']), 'sites[0].hosts[0]: it is an IP address, and a site is reached by a DNS name'],
    ['a wildcard of a public suffix', (j) => (j.sites[0].hosts = ['*.co.uk']), 'sites[0].hosts[0]: "co.uk" is a public suffix'],
    ['a wildcard deeper than the first label', (j) => (j.sites[0].hosts = ['a.*.nomsbook.com']), 'sites[0].hosts[0]: "*" is only allowed as the whole first label'],
    ['an unknown challenge', (j) => (j.sites[0].challenge = 'dns-02'), 'sites[0].challenge: must be one of http-01, tls-alpn-01, dns-01'],
    ['a host not in normal form', (j) => (j.sites[0].hosts = ['Dev.Nomsbook.com.']), 'sites[0].hosts[0]: not in normal form; write "dev.nomsbook.com" (found "Dev.Nomsbook.com.")'],
    ['a bad tag prefix', (j) => (j.sites[0].tagPrefix = 'dev build'), 'sites[0].tagPrefix: use one or more characters'],
    ['a bad version name', (j) => (j.sites[0].versions[0].name = '-41'), 'sites[0].versions[0].name: use 1-128 characters'],
    ['no upstreams', (j) => (j.sites[0].versions[0].upstreams = []), 'sites[0].versions[0].upstreams: a version needs at least one upstream'],
    ['a non-http upstream', (j) => (j.sites[0].versions[1].upstreams[0] = 'ftp://10.0.1.9'), 'sites[0].versions[1].upstreams[0]: the scheme must be http, https, h2c or h2, not ftp; give an origin such as http://10.0.1.7:8080 (found "ftp://10.0.1.9")'],
    ['an upstream with a path', (j) => (j.sites[0].versions[1].upstreams[1] = 'http://10.0.1.10:8080/app'), 'sites[0].versions[1].upstreams[1]: it must not have a path (/app)'],
    ['an upstream not in normal form', (j) => (j.sites[0].versions[0].upstreams[0] = 'http://10.0.1.7:8080/'), 'sites[0].versions[0].upstreams[0]: not in normal form; write "http://10.0.1.7:8080"'],
    ['a duplicate upstream', (j) => (j.sites[0].versions[1].upstreams[1] = 'http://10.0.1.9:8080'), 'sites[0].versions[1].upstreams[1]: upstream already listed at sites[0].versions[1].upstreams[0]'],
    ['a bad timestamp', (j) => (j.sites[0].versions[0].registeredAt = '2026-11-25 10:00'), 'sites[0].versions[0].registeredAt: must be an ISO-8601 UTC timestamp'],
    ['a non-UTC timestamp', (j) => (j.sites[0].versions[0].registeredAt = '2026-11-25T10:00:00+01:00'), 'sites[0].versions[0].registeredAt: must be an ISO-8601 UTC timestamp'],
    ['an unknown active version', (j) => (j.sites[0].activeVersion = 'devbuild-43'), 'sites[0].activeVersion: not one of the site\'s versions; use null or the name of a version in "versions" (found "devbuild-43")'],
    ['an unknown history entry', (j) => (j.sites[0].history = ['devbuild-40']), 'sites[0].history[0]: not one of the site\'s versions'],
    ['a history that is too long', (j) => (j.sites[0].history = Array(MAX_HISTORY + 1).fill('devbuild-41')), 'sites[0].history: at most 20 entries are kept'],
    ['a duplicate version', (j) => (j.sites[0].versions[1].name = 'devbuild-41'), 'sites[0].versions[1].name: version name already used at sites[0].versions[0].name'],
    ['a duplicate site', (j) => j.sites.push({ ...j.sites[0], hosts: ['other.com'], tagPrefix: 'x-' }), 'sites[1].name: site name already used at sites[0].name'],
    ['a host in two sites', (j) => j.sites.push({ ...j.sites[0], name: 'dev2', tagPrefix: 'x-' }), 'sites[1].hosts[0]: host already listed at sites[0].hosts[0]; a host belongs to one site only (found "dev.nomsbook.com")'],
    ['a shared tag prefix', (j) => j.sites.push({ ...j.sites[0], name: 'dev2', hosts: ['other.com'] }), 'sites[1].tagPrefix: tag prefix already used at sites[0].tagPrefix'],
    ['a non-object', (j) => (j.sites = {}), 'sites: expected an array (found {})'],
    ['HSTS without maxAge', (j) => (j.sites[0].hsts = { includeSubDomains: true }), 'sites[0].hsts.maxAge: required field is missing'],
    ['a negative HSTS maxAge', (j) => (j.sites[0].hsts = { maxAge: -1 }), 'sites[0].hsts.maxAge: must be a whole number of seconds, 0 or more, such as 31536000 (one year); 0 tells browsers to forget the policy (found -1)'],
    ['a fractional HSTS maxAge', (j) => (j.sites[0].hsts = { maxAge: 1.5 }), 'sites[0].hsts.maxAge: must be a whole number of seconds, 0 or more'],
    ['an HSTS maxAge as text', (j) => (j.sites[0].hsts = { maxAge: '1y' }), 'sites[0].hsts.maxAge: expected a number (found "1y")'],
    ['HSTS preload without includeSubDomains', (j) => (j.sites[0].hsts = { maxAge: 63072000, preload: true }), 'sites[0].hsts.preload: requires includeSubDomains (hstspreload.org lists only domains whose policy covers their subdomains); set includeSubDomains or drop preload (found true)'],
    ['HSTS preload with a short maxAge', (j) => (j.sites[0].hsts = { maxAge: 31535999, includeSubDomains: true, preload: true }), 'sites[0].hsts.preload: requires a maxAge of at least 31536000 (one year, as hstspreload.org requires); raise maxAge or drop preload (found true)'],
    ['an unknown HSTS field', (j) => (j.sites[0].hsts = { maxAge: 0, includeSubdomains: true }), 'sites[0].hsts.includeSubdomains: unknown field'],
  ])('rejects %s, naming the file, the JSON path and the value', (_, edit, expected) => {
    expectError(() => parseRoutingTable(exampleWith(edit), '/le/routes.json'), 'ERR_ROUTES_INVALID', `Invalid routing table /le/routes.json: ${expected}`);
  });

  it('accepts an HSTS policy and writes it back after tagPrefix, flags as written', () => {
    const text = exampleWith((j) => (j.sites[0] = { name: 'dev', hosts: ['dev.nomsbook.com'], hsts: { preload: true, includeSubDomains: true, maxAge: 63072000 }, activeVersion: null, history: [], versions: [] }));
    const table = parseRoutingTable(text, 'routes.json');
    expect(findSite(table, 'dev').hsts).toEqual({ maxAge: 63072000, includeSubDomains: true, preload: true });
    expect(serializeRoutingTable(table)).toContain('"hosts": [\n        "dev.nomsbook.com"\n      ],\n      "hsts": {\n        "maxAge": 63072000,\n        "includeSubDomains": true,\n        "preload": true\n      },');
    const hand = parseRoutingTable(exampleWith((j) => (j.sites[0].hsts = { maxAge: 0, includeSubDomains: false })), 'routes.json');
    expect(findSite(hand, 'dev').hsts).toEqual({ maxAge: 0, includeSubDomains: false });
    expect(parseRoutingTable(serializeRoutingTable(hand), 'round trip')).toEqual(hand);
  });

  it('reports several problems at once, up to three', () => {
    const text = exampleWith((j) => {
      j.a = 1;
      j.b = 2;
      j.c = 3;
      j.d = 4;
    });
    expectError(() => parseRoutingTable(text, 'r.json'), 'ERR_ROUTES_INVALID', 'a: unknown field', 'c: unknown field (misspelt? unknown fields are not allowed) (and 1 more problem).');
  });
});

describe('validateRoutingTable', () => {
  it('validates values that did not come from text', () => {
    expect(validateRoutingTable(emptyRoutingTable(), 'x')).toEqual({ schemaVersion: 1, generation: 0, sites: [] });
    expectError(() => validateRoutingTable(null, 'the API request'), 'ERR_ROUTES_INVALID', 'Invalid routing table the API request: top level: expected an object (found null)');
  });
});

describe('addSite', () => {
  it('adds a site with the default tag prefix, normalised and distinct hosts, and generation + 1', () => {
    const before = emptyRoutingTable();
    const after = checked(addSite(before, { name: 'dev', hosts: ['Bücher.example.', 'xn--bcher-kva.example', 'dev.example.com'] }));
    expect(after.generation).toBe(1);
    expect(after.sites).toEqual([
      { name: 'dev', hosts: ['xn--bcher-kva.example', 'dev.example.com'], tagPrefix: 'devbuild-', activeVersion: null, history: [], versions: [] },
    ]);
    expect(before).toEqual(emptyRoutingTable());
  });

  it('uses the given tag prefix, release- for prod, and none for other sites', () => {
    let table = addSite(emptyRoutingTable(), { name: 'prod', hosts: ['example.com'] });
    table = addSite(table, { name: 'blog', hosts: ['blog.example.com'] });
    table = checked(addSite(table, { name: 'dev', hosts: ['dev.example.com'], tagPrefix: 'nightly-' }));
    expect(table.sites.map((s) => s.tagPrefix)).toEqual(['release-', undefined, 'nightly-']);
    expect(table.generation).toBe(3);
  });

  it('returns the same table when the site exists with the same hosts (in any order) and prefix', () => {
    const table = sample();
    expect(addSite(table, { name: 'prod', hosts: ['WWW.example.com', 'example.com'] })).toBe(table);
    expect(addSite(table, { name: 'dev', hosts: ['dev.example.com'], tagPrefix: 'devbuild-' })).toBe(table);
  });

  it('refuses to redefine an existing site', () => {
    expectError(() => addSite(sample(), { name: 'prod', hosts: ['example.com'] }), 'ERR_SITE_EXISTS',
      'Site "prod" already exists with hosts example.com, www.example.com and tag prefix "release-"');
    expectError(() => addSite(sample(), { name: 'dev', hosts: ['dev.example.com'], tagPrefix: 'other-' }), 'ERR_SITE_EXISTS');
  });

  it('refuses a host that belongs to another site', () => {
    expectError(() => addSite(sample(), { name: 'shop', hosts: ['shop.example.com', 'WWW.example.com'] }), 'ERR_HOST_TAKEN',
      'Host "www.example.com" already belongs to site "prod"');
  });

  it('refuses a tag prefix another site uses', () => {
    expectError(() => addSite(sample(), { name: 'shop', hosts: ['shop.example.com'], tagPrefix: 'release-' }), 'ERR_TAG_PREFIX_TAKEN',
      'Tag prefix "release-" is already used by site "prod"');
  });

  it.each<[string, Parameters<typeof addSite>[1], string, string]>([
    ['an invalid name', { name: 'My_Site', hosts: ['a.com'] }, 'ERR_INVALID_SITE_NAME', 'Invalid site name "My_Site": use 1-63 characters'],
    ['no hosts', { name: 'shop', hosts: [] }, 'ERR_NO_HOSTS', 'Site "shop" needs at least one host'],
    ['an invalid host', { name: 'shop', hosts: ['shop.example.com:443'] }, 'ERR_INVALID_HOSTNAME', 'Invalid hostname "shop.example.com:443" in the hosts of site "shop"'],
    ['an invalid tag prefix', { name: 'shop', hosts: ['a.com'], tagPrefix: 'shop/' }, 'ERR_INVALID_TAG_PREFIX', 'Invalid tag prefix "shop/"'],
  ])('rejects %s', (_, request, code, message) => {
    expectError(() => addSite(sample(), request), code, message);
  });
});

describe('wildcard hosts', () => {
  const acme = (challenge: 'http-01' | 'tls-alpn-01' | 'dns-01') => ({ issuer: 'acme', challenge }) as const;
  const add = (hosts: string[], challenge?: 'http-01' | 'dns-01') =>
    addSite(emptyRoutingTable(), { name: 'wild', hosts, ...(challenge === undefined ? {} : { challenge }) }, acme('http-01'));

  it('accepts *.<registered domain>, normalised, with the challenge kept in the table', () => {
    const table = add(['*.Example.COM', 'example.com'], 'dns-01');
    expect(findSite(table, 'wild')).toMatchObject({ hosts: ['*.example.com', 'example.com'], challenge: 'dns-01' });
    expect(parseRoutingTable(serializeRoutingTable(table), 'routes.json')).toEqual(table);
  });

  it('refuses "*" alone, a public suffix, and a "*" that is not the whole first label', () => {
    for (const [host, message] of [
      ['*', '"*" is only allowed as the whole first label'],
      ['*.com', '"com" is a public suffix'],
      ['*.co.uk', '"co.uk" is a public suffix'],
      ['*.*.example.com', '"*" is only allowed as the whole first label'],
      ['a*.example.com', '"*" is only allowed as the whole first label'],
    ] as const) {
      expect(() => add([host], 'dns-01'), host).toThrow(message);
    }
  });

  it('needs dns-01 (the site\'s or the proxies\') on an ACME issuer, and nothing on the local CA', () => {
    expect(() => add(['*.example.com'])).toThrow(expect.objectContaining({ code: 'ERR_WILDCARD_NEEDS_DNS01', message: expect.stringContaining('--challenge dns-01') }));
    expect(() => add(['*.example.com'], 'http-01')).toThrow(/validated over http-01/);
    expect(addSite(emptyRoutingTable(), { name: 'wild', hosts: ['*.example.com'] }, acme('dns-01')).sites).toHaveLength(1);
    expect(addSite(emptyRoutingTable(), { name: 'wild', hosts: ['*.example.com'] }, { issuer: 'local', challenge: 'http-01' }).sites).toHaveLength(1);
    const change: RoutingTableChange = { op: 'addSite', site: 'wild', hosts: ['*.example.com'] };
    expect(() => applyRoutingTableChange(emptyRoutingTable(), change, new Date(), acme('tls-alpn-01'))).toThrow(/ERR_WILDCARD_NEEDS_DNS01|wildcard/);
  });

  it('compares the challenge of an existing site only when one is given', () => {
    const table = add(['app.example.com'], 'dns-01');
    expect(addSite(table, { name: 'wild', hosts: ['app.example.com'] }, acme('http-01'))).toBe(table);
    expect(() => addSite(table, { name: 'wild', hosts: ['app.example.com'], challenge: 'http-01' }, acme('http-01'))).toThrow(/already exists/);
  });
});

describe('preview hosts', () => {
  const staged = (names: string[]) =>
    names.reduce(
      (table, version) => registerVersion(table, { site: 'shop', version, upstreams: ['http://10.0.0.1:80'], registeredAt: new Date(0), activate: false }),
      addSite(emptyRoutingTable(), { name: 'shop', hosts: ['shop.example.com'] }),
    );

  it('sets a normalised preview domain and access, written back in order, and keeps the table when unchanged', () => {
    const table = setSitePreview(staged(['v1', 'Build-2']), 'shop', { domain: 'Preview.Example.COM', networks: ['10.0.0.0/8', '192.0.2.7'], token: true });
    const site = findSite(table, 'shop');
    expect(site.preview).toEqual({ domain: 'preview.example.com', networks: ['10.0.0.0/8', '192.0.2.7'], token: true });
    expect(previewHost(site, 'Build-2')).toBe('build-2.preview.example.com');
    expect(parseRoutingTable(serializeRoutingTable(table), 'routes.json')).toEqual(table);
    expect(setSitePreview(table, 'shop', { domain: 'preview.example.com', networks: ['192.0.2.7', '10.0.0.0/8'], token: true })).toBe(table);
    expect(findSite(setSitePreview(table, 'shop', null), 'shop').preview).toBeUndefined();
  });

  it('refuses versions that cannot be a DNS label, when the domain is set and at register time', () => {
    expect(() => setSitePreview(staged(['v1.2']), 'shop', { domain: 'preview.example.com' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_VERSION_NAME', message: expect.stringContaining('"v1.2" is not a DNS label') }),
    );
    expect(() => setSitePreview(staged(['a'.repeat(64)]), 'shop', { domain: 'preview.example.com' })).toThrow('longer than 63 characters');
    expect(() => setSitePreview(staged(['V1', 'v1']), 'shop', { domain: 'preview.example.com' })).toThrow('would share the preview host v1.preview.example.com');
    const withPreview = setSitePreview(staged(['v1']), 'shop', { domain: 'preview.example.com' });
    expect(() => registerVersion(withPreview, { site: 'shop', version: 'build_3', upstreams: ['http://10.0.0.1:80'], registeredAt: new Date(0), activate: false })).toThrow(
      /cannot have a preview host under preview.example.com/,
    );
    expect(() => registerVersion(withPreview, { site: 'shop', version: 'V1', upstreams: ['http://10.0.0.2:80'], registeredAt: new Date(0), activate: false })).toThrow(/would share/);
  });

  it('refuses a public suffix as the domain, bad networks, and on ACME a preview wildcard without dns-01', () => {
    expect(() => setSitePreview(staged([]), 'shop', { domain: 'co.uk' })).toThrow('"co.uk" is a public suffix');
    expect(() => setSitePreview(staged([]), 'shop', { domain: 'preview.example.com', networks: ['10.0.0.0/33'] })).toThrow('Invalid preview network "10.0.0.0/33"');
    expect(() => setSitePreview(staged([]), 'shop', { domain: 'preview.example.com' }, { issuer: 'acme', challenge: 'http-01' })).toThrow(/ERR_WILDCARD_NEEDS_DNS01|\*\.preview\.example\.com is a wildcard/);
    expect(() => addSite(emptyRoutingTable(), { name: 'shop', hosts: ['shop.example.com'], preview: { domain: 'preview.example.com' } }, { issuer: 'acme', challenge: 'tls-alpn-01' })).toThrow(/is a wildcard/);
    const invalid = JSON.parse(serializeRoutingTable(staged(['v_1'])));
    invalid.sites[0].preview = { domain: 'preview.example.com' };
    expect(() => validateRoutingTable(invalid, 'routes.json')).toThrow('sites[0].versions[0].name: "v_1" is not a DNS label');
  });
});

describe('HSTS', () => {
  const YEAR = 31_536_000;

  it('is off unless given, and set at addSite in normal form (only the flags that are on)', () => {
    expect(findSite(sample(), 'dev').hsts).toBeUndefined();
    const table = checked(addSite(emptyRoutingTable(), { name: 'shop', hosts: ['shop.example.com'], hsts: { maxAge: YEAR, includeSubDomains: false, preload: false } }));
    expect(findSite(table, 'shop').hsts).toEqual({ maxAge: YEAR });
    expect(addSite(emptyRoutingTable(), { name: 'shop', hosts: ['shop.example.com'], hsts: null }).sites[0]).not.toHaveProperty('hsts');
  });

  it('lets addSite of an existing site pass when HSTS is left out or the same, and refuses another HSTS', () => {
    const table = addSite(emptyRoutingTable(), { name: 'shop', hosts: ['shop.example.com'], hsts: { maxAge: YEAR } });
    expect(addSite(table, { name: 'shop', hosts: ['shop.example.com'] })).toBe(table);
    expect(addSite(table, { name: 'shop', hosts: ['shop.example.com'], hsts: { maxAge: YEAR, preload: false } })).toBe(table);
    expectError(() => addSite(table, { name: 'shop', hosts: ['shop.example.com'], hsts: null }), 'ERR_SITE_EXISTS',
      'Site "shop" already exists with HSTS "max-age=31536000". Change its HSTS setting with: deploy site hsts shop --max-age <duration>|off.');
    expectError(() => addSite(sample(), { name: 'dev', hosts: ['dev.example.com'], hsts: { maxAge: 60 } }), 'ERR_SITE_EXISTS', 'Site "dev" already exists with no HSTS.');
  });

  it('is set, changed and cleared by setSiteHsts, the same table when nothing changes', () => {
    const on = checked(setSiteHsts(sample(), 'dev', { maxAge: YEAR, includeSubDomains: true, preload: true }));
    expect(findSite(on, 'dev').hsts).toEqual({ maxAge: YEAR, includeSubDomains: true, preload: true });
    expect(on.generation).toBe(sample().generation + 1);
    expect(setSiteHsts(on, 'dev', { maxAge: YEAR, includeSubDomains: true, preload: true })).toBe(on);
    const forget = checked(setSiteHsts(on, 'dev', { maxAge: 0 }));
    expect(findSite(forget, 'dev').hsts).toEqual({ maxAge: 0 });
    const off = checked(setSiteHsts(forget, 'dev', null));
    expect(findSite(off, 'dev')).not.toHaveProperty('hsts');
    expect(findSite(off, 'dev')).toEqual(findSite(sample(), 'dev'));
    expect(setSiteHsts(off, 'dev', null)).toBe(off);
  });

  it.each<[string, { maxAge: number; includeSubDomains?: boolean; preload?: boolean }, string]>([
    ['a negative maxAge', { maxAge: -5 }, 'maxAge must be a whole number of seconds, 0 or more'],
    ['a fractional maxAge', { maxAge: 0.5 }, 'maxAge must be a whole number of seconds'],
    ['preload alone', { maxAge: YEAR, preload: true }, 'preload requires includeSubDomains'],
    ['preload under a year', { maxAge: YEAR - 1, includeSubDomains: true, preload: true }, 'preload requires a maxAge of at least 31536000 (one year, as hstspreload.org requires); raise maxAge or drop preload.'],
  ])('refuses %s with ERR_INVALID_HSTS naming the site and field, changing nothing', (_, hsts, message) => {
    const table = sample();
    expectError(() => setSiteHsts(table, 'dev', hsts), 'ERR_INVALID_HSTS', `Invalid HSTS setting for site "dev": ${message}`);
    expectError(() => addSite(table, { name: 'shop', hosts: ['shop.example.com'], hsts }), 'ERR_INVALID_HSTS', 'site "shop"');
    expect(table).toEqual(sample());
  });

  it('fails for an unknown site', () => {
    expectError(() => setSiteHsts(sample(), 'stage', { maxAge: 60 }), 'ERR_UNKNOWN_SITE', 'Unknown site "stage": known sites: dev, prod.');
  });
});

describe('removeSite', () => {
  it('removes a site', () => {
    const table = sample();
    const after = checked(removeSite(table, 'dev'));
    expect(after.sites.map((s) => s.name)).toEqual(['prod']);
    expect(after.generation).toBe(table.generation + 1);
  });

  it('names the known sites when the site is unknown', () => {
    expectError(() => removeSite(sample(), 'stage'), 'ERR_UNKNOWN_SITE', 'Unknown site "stage": known sites: dev, prod.');
    expectError(() => removeSite(emptyRoutingTable(), 'stage'), 'ERR_UNKNOWN_SITE', 'the routing table has no sites yet');
  });
});

describe('registerVersion', () => {
  it('registers without activating', () => {
    const table = sample();
    const after = checked(registerVersion(table, { site: 'dev', version: 'c', upstreams: ['http://10.0.0.3:8080/'], registeredAt: AT, activate: false }));
    const dev = findSite(after, 'dev');
    expect(dev.versions.at(-1)).toEqual({ name: 'c', upstreams: ['http://10.0.0.3:8080'], registeredAt: '2026-11-25T12:00:00.000Z' });
    expect(dev.activeVersion).toBe('b');
    expect(after.generation).toBe(table.generation + 1);
  });

  it('registers and activates, pushing the previous active version onto the history', () => {
    const table = sample();
    expect(findSite(table, 'dev')).toMatchObject({ activeVersion: 'b', history: ['a'] });
    const after = checked(registerVersion(table, { site: 'dev', version: 'c', upstreams: ['http://10.0.0.3:8080'], registeredAt: AT, activate: true }));
    expect(findSite(after, 'dev')).toMatchObject({ activeVersion: 'c', history: ['a', 'b'] });
    expect(findSite(after, 'prod')).toBe(findSite(table, 'prod'));
  });

  it('normalises and de-duplicates upstreams', () => {
    const after = registerVersion(sample(), { site: 'prod', version: 'release-1', upstreams: ['HTTP://App:80/', 'http://app', 'https://app:443'], registeredAt: AT, activate: false });
    expect(findSite(after, 'prod').versions[0]!.upstreams).toEqual(['http://app', 'https://app']);
  });

  it('is a no-op for the same version with the same upstreams', () => {
    const table = sample();
    expect(registerVersion(table, { site: 'dev', version: 'b', upstreams: ['http://10.0.0.2:8080/'], registeredAt: new Date(), activate: true })).toBe(table);
    expect(registerVersion(table, { site: 'dev', version: 'a', upstreams: ['http://10.0.0.1:8080'], registeredAt: new Date(), activate: false })).toBe(table);
  });

  it('activates an already registered version when asked to', () => {
    const table = sample();
    const after = checked(registerVersion(table, { site: 'dev', version: 'a', upstreams: ['http://10.0.0.1:8080'], registeredAt: new Date(), activate: true }));
    expect(findSite(after, 'dev')).toMatchObject({ activeVersion: 'a', history: ['a', 'b'] });
    expect(findSite(after, 'dev').versions).toBe(findSite(table, 'dev').versions);
  });

  it('refuses other upstreams for an existing version unless replace is set', () => {
    const request = { site: 'dev', version: 'a', upstreams: ['http://10.0.0.9:8080'], registeredAt: AT, activate: false };
    expectError(() => registerVersion(sample(), request), 'ERR_VERSION_EXISTS', 'Version dev/a is already registered with upstreams http://10.0.0.1:8080', '--replace');
    const later = new Date('2026-11-26T00:00:00.000Z');
    const after = checked(registerVersion(sample(), { ...request, registeredAt: later, replace: true }));
    expect(findSite(after, 'dev').versions.map((v) => [v.name, v.upstreams[0], v.registeredAt])).toEqual([
      ['b', 'http://10.0.0.2:8080', AT.toISOString()],
      ['a', 'http://10.0.0.9:8080', later.toISOString()],
    ]);
    expect(findSite(after, 'dev').activeVersion).toBe('b');
  });

  it('with join, adds new upstreams to an existing version in place, keeping its registration time', () => {
    const table = sample();
    const join = { site: 'dev', version: 'a', registeredAt: new Date('2030-01-01T00:00:00.000Z'), activate: false, join: true };
    const after = checked(registerVersion(table, { ...join, upstreams: ['http://10.0.0.1:8080', 'http://10.0.0.9:8080/'] }));
    expect(findSite(after, 'dev').versions.map((v) => [v.name, v.upstreams, v.registeredAt])).toEqual([
      ['a', ['http://10.0.0.1:8080', 'http://10.0.0.9:8080'], AT.toISOString()],
      ['b', ['http://10.0.0.2:8080'], AT.toISOString()],
    ]);
    expect(registerVersion(after, { ...join, upstreams: ['http://10.0.0.9:8080'] })).toBe(after);
    const activated = checked(registerVersion(after, { ...join, upstreams: ['http://10.0.0.9:8080'], activate: true }));
    expect(findSite(activated, 'dev').activeVersion).toBe('a');
    const created = checked(registerVersion(table, { ...join, version: 'c', upstreams: ['http://c'] }));
    expect(findSite(created, 'dev').versions.at(-1)).toEqual({ name: 'c', upstreams: ['http://c'], registeredAt: '2030-01-01T00:00:00.000Z' });
  });

  it('refuses replace together with join', () => {
    const request = { site: 'dev', version: 'a', upstreams: ['http://x'], registeredAt: AT, activate: false, replace: true, join: true };
    expectError(() => registerVersion(sample(), request), 'ERR_INVALID_ARGUMENT', 'replace and join exclude each other');
  });

  it('keeps at most 20 history entries, dropping the oldest', () => {
    let table = addSite(emptyRoutingTable(), { name: 'dev', hosts: ['dev.example.com'] });
    for (let i = 0; i < MAX_HISTORY + 3; i++) {
      table = registerVersion(table, { site: 'dev', version: `v${i}`, upstreams: ['http://app'], registeredAt: AT, activate: true });
    }
    const dev = findSite(checked(table), 'dev');
    expect(dev.history).toHaveLength(MAX_HISTORY);
    expect(dev.history[0]).toBe('v2');
    expect(dev.history.at(-1)).toBe(`v${MAX_HISTORY + 1}`);
  });

  it.each<[string, Partial<Parameters<typeof registerVersion>[1]>, string, string]>([
    ['an unknown site', { site: 'stage' }, 'ERR_UNKNOWN_SITE', 'Unknown site "stage": known sites: dev, prod.'],
    ['an invalid version name', { version: 'v 1' }, 'ERR_INVALID_VERSION_NAME', 'Invalid version name "v 1"'],
    ['a version name that is too long', { version: 'v'.repeat(129) }, 'ERR_INVALID_VERSION_NAME', 'use 1-128 characters'],
    ['no upstreams', { upstreams: [] }, 'ERR_INVALID_UPSTREAM', 'No upstream given for version dev/c'],
    ['an invalid upstream', { upstreams: ['http://ok', '10.0.0.1:8080'] }, 'ERR_INVALID_UPSTREAM', 'Invalid upstream "10.0.0.1:8080" for version dev/c: it needs a scheme'],
    ['an invalid date', { registeredAt: new Date('nope') }, 'ERR_INVALID_ARGUMENT', 'registeredAt must be a valid Date'],
  ])('rejects %s', (_, override, code, message) => {
    const request = { site: 'dev', version: 'c', upstreams: ['http://10.0.0.3:8080'], registeredAt: AT, activate: true, ...override };
    expectError(() => registerVersion(sample(), request), code, message);
  });
});

describe('activateVersion', () => {
  it('activates a version and records the previous one', () => {
    const after = checked(activateVersion(sample(), 'dev', 'a'));
    expect(findSite(after, 'dev')).toMatchObject({ activeVersion: 'a', history: ['a', 'b'] });
  });

  it('returns the same table when the version is already active', () => {
    const table = sample();
    expect(activateVersion(table, 'dev', 'b')).toBe(table);
  });

  it('lists the site\'s versions when the version is unknown', () => {
    expectError(() => activateVersion(sample(), 'dev', 'z'), 'ERR_UNKNOWN_VERSION', 'Site "dev" has no version "z": its versions (newest last): a, b.');
    expectError(() => activateVersion(sample(), 'prod', 'z'), 'ERR_UNKNOWN_VERSION', 'it has no versions yet');
    expectError(() => activateVersion(sample(), 'nope', 'a'), 'ERR_UNKNOWN_SITE');
  });
});

describe('traffic guard', () => {
  const register = (table: RoutingTable, version: string, upstreams: string[], extra: object = {}) =>
    registerVersion(table, { site: 'dev', version, upstreams, registeredAt: AT, activate: false, ...extra });

  it('activates only when every upstream of the version passed the check', () => {
    const table = register(sample(), 'c', ['http://c1', 'http://c2']);
    expectError(() => activateVersion(table, 'dev', 'c', { checkedUpstreams: ['http://c1'] }), 'ERR_UNCHECKED_UPSTREAMS',
      'Not sending traffic for dev/c to upstreams that have not passed a health check: http://c2.');
    const after = checked(activateVersion(table, 'dev', 'c', { checkedUpstreams: ['http://c1', 'http://c2'] }));
    expect(findSite(after, 'dev').activeVersion).toBe('c');
    expect(activateVersion(table, 'dev', 'b', { checkedUpstreams: [] })).toBe(table); // already active: no new traffic
  });

  it('lets a registration add only checked upstreams to the active version', () => {
    const table = sample(); // b is active with http://10.0.0.2:8080
    const join = { join: true, guard: { checkedUpstreams: [] } };
    expectError(() => register(table, 'b', ['http://10.0.0.3:8080'], join), 'ERR_UNCHECKED_UPSTREAMS', 'http://10.0.0.3:8080');
    const after = register(table, 'b', ['http://10.0.0.3:8080'], { join: true, guard: { checkedUpstreams: ['http://10.0.0.3:8080'] } });
    expect(findVersion(findSite(after, 'dev'), 'b').upstreams).toEqual(['http://10.0.0.2:8080', 'http://10.0.0.3:8080']);
    // Staging an inactive version needs no check.
    expect(findSite(register(table, 'c', ['http://c'], { guard: { checkedUpstreams: [] } }), 'dev').versions).toHaveLength(3);
  });

  it('does not replace a version registered later that became active meanwhile', () => {
    let table = register(sample(), 'c', ['http://c']); // read by deploy 1: b active
    table = register(table, 'd', ['http://d']);
    table = activateVersion(table, 'dev', 'd'); // deploy 2 finished first
    expectError(() => activateVersion(table, 'dev', 'c', { activeBefore: 'b' }), 'ERR_SUPERSEDED',
      'Did not activate dev/c: dev/d, registered after it, became active meanwhile', 'deploy activate --site dev --version c');
    // An older version that became active meanwhile (a rollback) is replaced, and so is anything when nothing changed.
    expect(findSite(activateVersion(rollback(table, 'dev'), 'dev', 'd', { activeBefore: 'c' }), 'dev').activeVersion).toBe('d');
    expect(findSite(activateVersion(table, 'dev', 'a', { activeBefore: 'd' }), 'dev').activeVersion).toBe('a');
    expect(findSite(activateVersion(table, 'dev', 'c', {}), 'dev').activeVersion).toBe('c');
  });
});

describe('applyRoutingTableChange', () => {
  it('applies each kind of change like the operation it names', () => {
    const now = new Date('2030-01-01T00:00:00.000Z');
    const changes: RoutingTableChange[] = [
      { op: 'addSite', site: 'blog', hosts: ['blog.example.com'], tagPrefix: 'blog-', hsts: { maxAge: 60 } },
      { op: 'setHsts', site: 'blog', hsts: { maxAge: 31_536_000, includeSubDomains: true } },
      { op: 'registerVersion', site: 'blog', version: 'blog-1', upstreams: ['http://b1'], activate: true },
      { op: 'registerVersion', site: 'blog', version: 'blog-2', upstreams: ['http://b2'], activate: false, guard: { checkedUpstreams: [] } },
      { op: 'activateVersion', site: 'blog', version: 'blog-2', guard: { checkedUpstreams: ['http://b2'], activeBefore: 'blog-1' } },
      { op: 'rollback', site: 'blog' },
      { op: 'removeVersion', site: 'blog', version: 'blog-2' },
      { op: 'pruneVersions', site: 'dev', keep: 0 },
      { op: 'removeSite', site: 'prod' },
    ];
    const after = checked(changes.reduce((table, change) => applyRoutingTableChange(table, change, now), sample()));
    expect(after.sites.map((s) => s.name)).toEqual(['dev', 'blog']);
    expect(findSite(after, 'dev').versions.map((v) => v.name)).toEqual(['b']);
    expect(findSite(after, 'blog')).toEqual({
      name: 'blog', hosts: ['blog.example.com'], tagPrefix: 'blog-', hsts: { maxAge: 31_536_000, includeSubDomains: true }, activeVersion: 'blog-1', history: [],
      versions: [{ name: 'blog-1', upstreams: ['http://b1'], registeredAt: now.toISOString() }],
    });
    expect(after.generation).toBe(sample().generation + changes.length);
  });

  it('keeps the guards of a change', () => {
    const table = registerVersion(sample(), { site: 'dev', version: 'c', upstreams: ['http://c'], registeredAt: AT, activate: false });
    expectError(() => applyRoutingTableChange(table, { op: 'activateVersion', site: 'dev', version: 'c', guard: { checkedUpstreams: [] } }, AT), 'ERR_UNCHECKED_UPSTREAMS');
    const change: RoutingTableChange = { op: 'registerVersion', site: 'dev', version: 'b', upstreams: ['http://new'], activate: false, join: true, guard: { checkedUpstreams: [] } };
    expectError(() => applyRoutingTableChange(table, change, AT), 'ERR_UNCHECKED_UPSTREAMS');
  });
});

describe('upstreamsGainingTraffic', () => {
  const register = (version: string, upstreams: string[], extra: object = {}): RoutingTableChange =>
    ({ op: 'registerVersion', site: 'dev', version, upstreams, activate: false, ...extra }) as RoutingTableChange;

  it('names the upstreams of a version a change activates, and those it adds to the active version', () => {
    const table = applyRoutingTableChange(sample(), register('c', ['http://c1', 'http://c2']), AT);
    expect(upstreamsGainingTraffic(table, { op: 'activateVersion', site: 'dev', version: 'c' })).toEqual(['http://c1', 'http://c2']);
    expect(upstreamsGainingTraffic(table, register('d', ['http://d'], { activate: true }))).toEqual(['http://d']);
    expect(upstreamsGainingTraffic(table, { op: 'rollback', site: 'dev' })).toEqual(['http://10.0.0.1:8080']);
    // b (active) keeps http://10.0.0.2:8080: only what is new counts.
    expect(upstreamsGainingTraffic(table, register('b', ['http://10.0.0.2:8080', 'http://b2'], { join: true }))).toEqual(['http://b2']);
    expect(upstreamsGainingTraffic(table, register('b', ['http://b3', 'http://10.0.0.2:8080'], { replace: true }))).toEqual(['http://b3']);
  });

  it('names none for a change that sends no traffic anywhere new', () => {
    const table = sample();
    expect(upstreamsGainingTraffic(table, register('c', ['http://c']))).toEqual([]);
    expect(upstreamsGainingTraffic(table, { op: 'activateVersion', site: 'dev', version: 'b' })).toEqual([]);
    expect(upstreamsGainingTraffic(table, { op: 'removeSite', site: 'dev' })).toEqual([]);
    expect(upstreamsGainingTraffic(table, { op: 'addSite', site: 'blog', hosts: ['blog.example.com'] })).toEqual([]);
  });

  it('throws what the change throws', () => {
    expectError(() => upstreamsGainingTraffic(sample(), { op: 'activateVersion', site: 'dev', version: 'zz' }), 'ERR_UNKNOWN_VERSION');
  });
});

describe('rollback', () => {
  it('re-activates the previous version without pushing the current one, so repeated rollbacks walk back', () => {
    let table = registerVersion(sample(), { site: 'dev', version: 'c', upstreams: ['http://c'], registeredAt: AT, activate: true });
    table = checked(rollback(table, 'dev'));
    expect(findSite(table, 'dev')).toMatchObject({ activeVersion: 'b', history: ['a'] });
    table = checked(rollback(table, 'dev'));
    expect(findSite(table, 'dev')).toMatchObject({ activeVersion: 'a', history: [] });
    expect(table.generation).toBe(sample().generation + 3);
    expectError(() => rollback(table, 'dev'), 'ERR_NO_ROLLBACK', 'Site "dev" has no earlier active version to roll back to');
  });

  it('skips history entries equal to the active version', () => {
    // a, b, a, b active → history [a, b, a]; removing a leaves [b] with b active.
    let table = activateVersion(activateVersion(sample(), 'dev', 'a'), 'dev', 'b');
    table = registerVersion(table, { site: 'dev', version: 'c', upstreams: ['http://c'], registeredAt: AT, activate: false });
    table = removeVersion(table, 'dev', 'a');
    expect(findSite(table, 'dev')).toMatchObject({ activeVersion: 'b', history: ['b'] });
    expectError(() => rollback(table, 'dev'), 'ERR_NO_ROLLBACK');
  });

  it('fails for a site that never had an active version', () => {
    expectError(() => rollback(sample(), 'prod'), 'ERR_NO_ROLLBACK');
  });
});

describe('removeVersion', () => {
  it('removes an inactive version and its history entries', () => {
    const table = sample();
    const after = checked(removeVersion(table, 'dev', 'a'));
    expect(findSite(after, 'dev')).toMatchObject({ activeVersion: 'b', history: [] });
    expect(findSite(after, 'dev').versions.map((v) => v.name)).toEqual(['b']);
    expect(after.generation).toBe(table.generation + 1);
  });

  it('refuses to remove the active version, and unknown versions', () => {
    expectError(() => removeVersion(sample(), 'dev', 'b'), 'ERR_VERSION_ACTIVE', 'Version dev/b is active; activate another version (or roll back) before removing it.');
    expectError(() => removeVersion(sample(), 'dev', 'x'), 'ERR_UNKNOWN_VERSION');
  });
});

describe('pruneVersions', () => {
  function withVersions(count: number, active: string): RoutingTable {
    let table = addSite(emptyRoutingTable(), { name: 'dev', hosts: ['dev.example.com'] });
    for (let i = 1; i <= count; i++) {
      table = registerVersion(table, { site: 'dev', version: `v${i}`, upstreams: ['http://app'], registeredAt: AT, activate: true });
    }
    return activateVersion(table, 'dev', active);
  }

  it('keeps the newest versions plus the active one, and prunes the history with them', () => {
    const table = withVersions(6, 'v2');
    const after = checked(pruneVersions(table, 'dev', 2));
    const dev = findSite(after, 'dev');
    expect(dev.versions.map((v) => v.name)).toEqual(['v2', 'v5', 'v6']);
    expect(dev.history).toEqual(['v2', 'v5', 'v6']);
    expect(after.generation).toBe(table.generation + 1);
    expect(findSite(checked(pruneVersions(table, 'dev', 0)), 'dev').versions.map((v) => v.name)).toEqual(['v2']);
  });

  it('returns the same table when nothing is pruned', () => {
    const table = withVersions(3, 'v1');
    expect(pruneVersions(table, 'dev', 3)).toBe(table);
    expect(pruneVersions(table, 'dev', 2)).toBe(table); // v1 is active, v2 and v3 are the newest
  });

  it('rejects a negative or fractional count', () => {
    expectError(() => pruneVersions(sample(), 'dev', -1), 'ERR_INVALID_ARGUMENT');
    expectError(() => pruneVersions(sample(), 'dev', 1.5), 'ERR_INVALID_ARGUMENT');
  });
});

describe('siteForTag', () => {
  it('picks the site with the longest matching prefix', () => {
    const table = addSite(sample(), { name: 'devx', hosts: ['x.dev.example.com'], tagPrefix: 'devbuild-x-' });
    expect(siteForTag(table, 'devbuild-42').name).toBe('dev');
    expect(siteForTag(table, 'devbuild-x-42').name).toBe('devx');
    expect(siteForTag(table, 'release-1.2').name).toBe('prod');
  });

  it('lists the known prefixes when no site matches', () => {
    expectError(() => siteForTag(sample(), 'nightly-7'), 'ERR_NO_SITE_FOR_TAG',
      'No site\'s tag prefix matches tag "nightly-7" (known tag prefixes: devbuild- (site dev), release- (site prod))');
    expectError(() => siteForTag(sample(), 'devbuild-'), 'ERR_NO_SITE_FOR_TAG');
    expectError(() => siteForTag(emptyRoutingTable(), 'x'), 'ERR_NO_SITE_FOR_TAG', 'no site has a tag prefix');
  });
});

describe('helpers', () => {
  it('defaultTagPrefix', () => {
    expect(defaultTagPrefix('dev')).toBe('devbuild-');
    expect(defaultTagPrefix('prod')).toBe('release-');
    expect(defaultTagPrefix('constructor')).toBeUndefined();
  });

  it.each([
    ['http://10.0.1.7:8080/', 'http://10.0.1.7:8080'],
    ['HTTPS://App.Internal:443', 'https://app.internal'],
    ['http://[::1]:9000', 'http://[::1]:9000'],
    ['http://my_app_1:3000', 'http://my_app_1:3000'],
    ['http://bücher.example', 'http://xn--bcher-kva.example'],
    // HTTP/2 schemes: the host is normalised as http:/https: normalise it, and the default port dropped.
    ['H2C://App.Internal:50051', 'h2c://app.internal:50051'],
    ['h2c://10.0.0.1:80', 'h2c://10.0.0.1'],
    ['h2://grpc.internal:443/', 'h2://grpc.internal'],
    ['h2://[::1]:8443', 'h2://[::1]:8443'],
    ['h2c://bücher.example:9000', 'h2c://xn--bcher-kva.example:9000'],
  ])('normalizeUpstreamUrl(%j) → %j', (input, expected) => {
    expect(normalizeUpstreamUrl(input, '--upstream')).toBe(expected);
  });

  it.each([
    ['ftp://x', 'the scheme must be http, https, h2c or h2, not ftp'],
    ['10.0.0.1:80', 'it needs a scheme (http, https, h2c or h2) and :// in front of the host'],
    ['h2c://x/app', 'it must not have a path (/app)'],
    ['h2://u@x', 'it must not contain credentials'],
    ['h2c://x:70000', 'its port 70000 is out of range (1 to 65535)'],
    ['http://user:pw@x', 'it must not contain credentials'],
    ['http://x/app', 'it must not have a path (/app)'],
    ['http://x/?a=1', 'it must not have a query or fragment'],
    ['http://x#top', 'it must not have a query or fragment'],
    ['http://x:80\t80', 'it contains whitespace or control characters'],
    [' http://x', 'it contains whitespace or control characters'],
    ['http://x:99999', 'its port 99999 is out of range (1 to 65535)'],
    ['http://x:y', 'it is not an absolute URL'],
  ])('normalizeUpstreamUrl rejects %j', (input, problem) => {
    expectError(() => normalizeUpstreamUrl(input, '--upstream'), 'ERR_INVALID_UPSTREAM', `Invalid upstream ${JSON.stringify(input)} for --upstream: ${problem}; give an origin such as http://10.0.1.7:8080.`);
  });
});

describe('restricted upstream targets', () => {
  const register = (table: RoutingTable, upstreams: string[], extra: { allowRestrictedUpstreams?: boolean; join?: boolean; version?: string } = {}) =>
    registerVersion(table, { site: 'dev', version: extra.version ?? 'c', upstreams, registeredAt: AT, activate: true, ...extra });

  it.each([
    ['http://169.254.169.254', 'link-local or cloud metadata'],
    ['http://169.254.170.2', 'link-local or cloud metadata'],
    // The URL parser's own spellings of 169.254.169.254: decimal, hex, and IPv4-mapped IPv6.
    ['http://2852039166', 'link-local or cloud metadata'],
    ['http://0xa9fea9fe:80', 'link-local or cloud metadata'],
    ['http://[::ffff:169.254.169.254]', 'link-local or cloud metadata'],
    ['http://[fd00:ec2::254]', 'link-local or cloud metadata'],
    ['http://[fe80::1]:8080', 'link-local or cloud metadata'],
    ['http://0.0.0.0:8080', 'unspecified address'],
    ['http://[::]:8080', 'unspecified address'],
    // The HTTP/2 schemes get the same checks, on the same normalised address.
    ['h2c://169.254.169.254', 'link-local or cloud metadata'],
    ['h2c://2852039166:50051', 'link-local or cloud metadata'],
    ['h2://[::ffff:169.254.169.254]', 'link-local or cloud metadata'],
    ['h2c://0.0.0.0:50051', 'unspecified address'],
  ])('refuses %s by default, in the operation and when the table is read', (upstream, why) => {
    expectError(() => register(sample(), [upstream]), 'ERR_RESTRICTED_UPSTREAM', 'dev/c', why, '"allowRestrictedUpstreams": true', '--allow-restricted-upstreams');
    const origin = normalizeUpstreamUrl(upstream, 'test');
    const text = exampleWith((json) => (json.sites[0].versions[0].upstreams = [origin]));
    expectError(() => parseRoutingTable(text, 'routes.json'), 'ERR_ROUTES_INVALID', 'sites[0].versions[0].upstreams[0]', why);
  });

  it('refuses port 0 always', () => {
    expectError(() => register(sample(), ['http://10.0.0.3:0'], { allowRestrictedUpstreams: true }), 'ERR_INVALID_UPSTREAM', 'port 0');
  });

  it('accepts them with the version\'s opt-in, which is stored, kept by a join and needed again by the next version', () => {
    const opted = checked(register(sample(), ['http://169.254.170.2'], { allowRestrictedUpstreams: true }));
    expect(findVersion(findSite(opted, 'dev'), 'c')).toEqual({ name: 'c', upstreams: ['http://169.254.170.2'], registeredAt: AT.toISOString(), allowRestrictedUpstreams: true });
    expect(serializeRoutingTable(opted)).toContain('"allowRestrictedUpstreams": true');
    const joined = checked(register(opted, ['http://10.0.0.9'], { join: true }));
    expect(findVersion(findSite(joined, 'dev'), 'c').allowRestrictedUpstreams).toBe(true);
    // The opt-in covers what the request that carries it adds, not what later requests add.
    expectError(() => register(opted, ['http://169.254.169.254'], { join: true }), 'ERR_RESTRICTED_UPSTREAM');
    expectError(() => register(opted, ['http://169.254.170.2'], { version: 'd' }), 'ERR_RESTRICTED_UPSTREAM');
    // Ordinary private addresses, loopback and names are no restricted targets.
    checked(register(sample(), ['http://10.0.0.3:8080', 'http://127.0.0.1:3000', 'http://[fd12::1]:80', 'http://app.internal', 'h2c://10.0.0.4:50051', 'h2://grpc.internal']));
    const flagged = exampleWith((json) => (json.sites[0].versions[0].allowRestrictedUpstreams = false));
    expectError(() => parseRoutingTable(flagged, 'routes.json'), 'ERR_ROUTES_INVALID', 'allowRestrictedUpstreams', 'must be true, or left out');
  });
});
