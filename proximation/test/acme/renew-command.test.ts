// `proximation renew` and `proximation certs` in-process on the local CA (no fixed ports, so this file
// runs beside the others); the ACME side, with several processes, is in pebble.test.ts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { table, tempDir, writeRoutes } from '../support/fixtures.js';
import { runMain } from '../support/process.js';
import { FileStorage } from '@proximation/shared';
import { BackoffStore } from '../../src/certs/backoff.js';

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

const run = runMain;

async function routedDir(hosts: string[]): Promise<{ le: string; env: NodeJS.ProcessEnv }> {
  const dir = await tempDir();
  cleanup = () => dir.close();
  const le = path.join(dir.path, 'le');
  await writeRoutes(path.join(le, 'proximation', 'routes.json'), table(hosts.map((host) => ({ name: host.split('.')[0]!, hosts: [host] }))));
  return { le, env: { PROXIMATION_LETSENCRYPT_DIR: le, PROXIMATION_ISSUER: 'local', PROXIMATION_LOG_LEVEL: 'warn', PROXIMATION_LOG_FORMAT: 'json' } };
}

describe('proximation renew / certs', () => {
  it('refuses its flags on other commands, and a bad --random-delay, as usage errors', async () => {
    expect((await run(['certs', '--force-renewal'], {})).err).toContain('--force-renewal is an option of "proximation renew" only');
    expect((await run(['serve', '--json'], {})).code).toBe(2);
    const bad = await run(['renew', '--random-delay', 'soon'], {});
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--random-delay');
  });

  it('renews only routed names: a --cert-name outside the routing table fails before any order', async () => {
    const { le, env } = await routedDir(['o.test']);
    const res = await run(['renew', '--cert-name', 'stranger.test'], env);
    expect(res.code).toBe(1);
    expect(res.err).toContain('--cert-name stranger.test: not in the routing table');
    expect(res.err).toContain('Routed: o.test');
    await expect(fs.readdir(path.join(le, 'archive'))).rejects.toThrow();
  });

  it('issues a missing certificate, then finds nothing due; certs lists it', async () => {
    const { le, env } = await routedDir(['o.test', 'p.test']);
    const first = await run(['renew', '--random-delay', '20ms', '--cert-name', 'o.test'], env);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^o\.test: renewed \(expires .*\)\nAll renewals succeeded or were not due\.\n$/);
    const second = await run(['renew'], env);
    expect(second.code, second.err).toBe(0);
    expect(second.out).toMatch(/^o\.test: not due .*\np\.test: renewed /);
    expect(await fs.readdir(path.join(le, 'archive', 'o.test'))).toHaveLength(4);

    const listing = await run(['certs'], env);
    expect(listing.code).toBe(0);
    expect(listing.out).toMatch(/Certificate Name: o\.test\n\s+Domains: o\.test\n\s+Issuer: .+\n\s+Serial Number: [0-9a-f]+\n\s+Expiry Date: \S+ \(VALID: \d+ days\)\n\s+Next Renewal: \S+\n\s+Certificate Path: .*\/live\/o\.test\/fullchain\.pem/);
    expect(listing.out).not.toContain('Last Error');
  });

  it('renews wildcard hosts and the preview wildcard of a site, into _wildcard. lineages', async () => {
    const { le, env } = await routedDir([]);
    const routes = path.join(le, 'proximation', 'routes.json');
    const wild = table([{ name: 'shop', hosts: ['*.shop.test'] }]);
    await writeRoutes(routes, { ...wild, sites: wild.sites.map((site) => ({ ...site, preview: { domain: 'preview.shop.test' } })) });
    const res = await run(['renew'], env);
    expect(res.code, res.err).toBe(0);
    expect(res.out).toMatch(/^\*\.preview\.shop\.test: renewed .*\n\*\.shop\.test: renewed /);
    expect((await fs.readdir(path.join(le, 'live'))).sort()).toEqual(['_wildcard.preview.shop.test', '_wildcard.shop.test']);
    expect((await run(['certs'], env)).out).toContain('Certificate Name: _wildcard.preview.shop.test\n    Domains: *.preview.shop.test');
  });

  it('certs lists routed names that never got a certificate, with the last error and next attempt, and marks lineages no site routes', async () => {
    const { le, env } = await routedDir(['old.test']);
    expect((await run(['renew'], env)).code).toBe(0);
    const routes = path.join(le, 'proximation', 'routes.json');
    // old.test is no longer routed; new.test and fresh.test never got a certificate; new.test failed twice.
    await writeRoutes(routes, table([{ name: 'new', hosts: ['new.test'] }, { name: 'fresh', hosts: ['fresh.test'] }], 2));
    const failedAt = new Date();
    await new BackoffStore(new FileStorage(le)).record('new.test', 'DNS problem: NXDOMAIN looking up A for new.test', failedAt);
    const state = await new BackoffStore(new FileStorage(le)).record('new.test', 'DNS problem: NXDOMAIN looking up A for new.test', failedAt);

    const json = await run(['certs', '--json'], env);
    expect(json.code, json.err).toBe(0);
    const report = JSON.parse(json.out) as Record<string, unknown>[];
    expect(report.map((r) => [r.name, r.status, r.routed])).toEqual([
      ['fresh.test', 'missing', true],
      ['new.test', 'missing', true],
      ['old.test', 'not-routed', false],
    ]);
    expect(report[0]).toMatchObject({ domains: ['fresh.test'], expiry: null, nextRenewal: null, nextAttempt: null, failures: 0, lastError: null });
    expect(report[1]).toMatchObject({ domains: ['new.test'], nextAttempt: state.nextAttemptAt.toISOString(), failures: 2, lastError: expect.stringContaining('NXDOMAIN') as unknown });
    expect(report[2]).toMatchObject({ domains: ['old.test'], nextRenewal: null, expiry: expect.any(String) as unknown });

    const text = await run(['certs'], env);
    expect(text.out).toContain(
      `  Certificate Name: new.test\n    Domains: new.test\n    Certificate: none yet (routed, never obtained)\n    Last Error: DNS problem: NXDOMAIN looking up A for new.test (2 failed attempts)\n    Next Attempt: ${state.nextAttemptAt.toISOString()}\n`,
    );
    expect(text.out).toContain('Certificate Name: fresh.test\n    Domains: fresh.test\n    Certificate: none yet (routed, never obtained)\n    Next Attempt: now');
    expect(text.out).toMatch(/Certificate Name: old\.test\n(.+\n){3}.+\n    Next Renewal: none \(no site routes this name any more; it is not renewed\)\n/);
    expect(text.out).toContain(`Looked in ${le}/live and the routing table ${routes}.`);
  });

  it('certs says where it looked when there is nothing to list', async () => {
    const { le, env } = await routedDir([]);
    const res = await run(['certs'], env);
    expect(res).toEqual({ code: 0, err: '', out: `No certificates found and no routed names. Looked in ${le}/live and the routing table ${path.join(le, 'proximation', 'routes.json')}.\n` });
  });

  it('lists an unreadable lineage with its problem instead of failing', async () => {
    const { le, env } = await routedDir(['q.test']);
    await fs.mkdir(path.join(le, 'live', 'q.test'), { recursive: true });
    await fs.writeFile(path.join(le, 'live', 'q.test', 'fullchain.pem'), 'not a certificate');
    await fs.writeFile(path.join(le, 'live', 'q.test', 'privkey.pem'), 'not a key');
    const res = await run(['certs', '--json'], env);
    expect(res.code).toBe(0);
    const [entry] = JSON.parse(res.out) as Record<string, unknown>[];
    expect(entry).toMatchObject({ name: 'q.test', domains: [], expiry: null, lastError: expect.stringContaining('contains no certificate') as unknown });
  }, 10_000);
});
