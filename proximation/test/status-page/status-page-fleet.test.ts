/**
 * The status page's fleet view in a real browser (headless Chromium, playwright-core): two proximation
 * processes on one shared directory, the page opened on one of them. It lists both instances (this one
 * marked) with generation, workers, rates and RSS; a member registered with a lease shows its lease
 * age, then "lease expired" once its renewals stop; a static upstream failing its health checks shows
 * so; an instance SIGKILLed leaves the list once its heartbeat is stale; a hostile instance id and
 * member identity are shown as text. A screenshot goes to test-output/status-page/fleet.png.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileFleetStorage, type FleetStorage, type RoutingTable } from '@proximation/shared';
import { launchChromium, type Browser } from '../../bench/chromium.js';
import { httpsRequest, startUpstream, tempDir, writeRoutes, type Upstream } from '../support/fixtures.js';
import { startServeProcess, type ServeProcess } from '../support/process.js';

const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output/status-page/', import.meta.url));
const TOKEN = 'status-page-fleet-token-0123456789';
const HOSTILE_INSTANCE = '<img src=x onerror="window.__pwned=1">';
// An identity is printable ASCII without spaces: this one passes the table's validation.
const HOSTILE_IDENTITY = '<img/src=x/onerror=window.__pwned=2>';
const LEASE_MS = 6_000;

let dir: { path: string; close(): Promise<void> };
let fleet: FleetStorage;
let browser: Browser;
let page: Page;
const errors: string[] = [];
const upstreams: Upstream[] = [];
const instances: ServeProcess[] = [];
let member: Upstream;
let failing: Upstream;
let renewing: NodeJS.Timeout | undefined;

const renew = () => fleet.putLease({ site: 'app', version: 'v1', upstream: member.origin, identity: HOSTILE_IDENTITY, leaseMs: LEASE_MS, renewedAt: new Date().toISOString() });

beforeAll(async () => {
  dir = await tempDir();
  const state = path.join(dir.path, 'proximation');
  fleet = fileFleetStorage(state);
  member = await startUpstream((_req, res) => res.end('member'));
  failing = await startUpstream((_req, res) => {
    res.statusCode = 503;
    res.end('unwell');
  });
  upstreams.push(member, failing);
  const joinedAt = new Date().toISOString();
  const table: RoutingTable = {
    schemaVersion: 1,
    generation: 3,
    sites: [{
      name: 'app',
      hosts: ['app.test'],
      activeVersion: 'v1',
      history: [],
      versions: [{
        name: 'v1',
        upstreams: [member.origin, failing.origin],
        registeredAt: joinedAt,
        members: [{ upstream: member.origin, identity: HOSTILE_IDENTITY, leaseMs: LEASE_MS, joinedAt }],
      }],
    }],
  };
  await writeRoutes(path.join(state, 'routes.json'), table);
  await renew();
  renewing = setInterval(() => void renew(), LEASE_MS / 3);
  // A 250 ms poll makes the heartbeat period 1.25 s: a SIGKILLed instance is stale after 3.75 s.
  const env = { PROXIMATION_ROUTES_POLL: '250ms', PROXIMATION_ACCESS_LOG: 'off', PROXIMATION_HEALTH_INTERVAL: '300ms', PROXIMATION_ADMIN_TOKEN: TOKEN };
  instances.push(await startServeProcess(dir.path, env, 20_000));
  instances.push(await startServeProcess(dir.path, { ...env, PROXIMATION_WORKERS: '2' }, 30_000));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  clearInterval(renewing);
  try {
    await browser?.close();
  } finally {
    await Promise.all(instances.map((instance) => instance.kill()));
    await Promise.all(upstreams.map((upstream) => upstream.close()));
    await dir?.close();
  }
});

const rowOf = (instance: ServeProcess) => page.locator(`#instances tbody tr:has-text(":${instance.cli.child.pid!}")`);
const memberOf = (upstream: Upstream) => page.locator(`.site[data-site="app"] li[data-member="${upstream.origin}"]`);

describe('the status page shows the fleet', () => {
  it('lists both instances, this one marked, with generation, workers and RSS, and the member with its lease age and health', async () => {
    const [single, withWorkers] = instances as [ServeProcess, ServeProcess];
    await httpsRequest(single.target, 'app.test');
    page = await browser.context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`http://127.0.0.1:${single.ports.admin}/`);
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');

    await expect.poll(() => rowOf(single).count(), { timeout: 20_000 }).toBe(1);
    await expect.poll(() => rowOf(withWorkers).count(), { timeout: 20_000 }).toBe(1);
    const cells = async (instance: ServeProcess) => (await rowOf(instance).locator('td').allTextContents()).map((text) => text.trim());
    // Instance, status, age, heartbeat, generation, workers, req/s, errors/s, in flight, RSS.
    expect(await cells(single)).toEqual([expect.stringMatching(/\(this instance\)$/), 'ok', expect.stringMatching(/^up \d+ s$/), expect.stringMatching(/ago$/), '3', '1', expect.stringMatching(/^\d+\.\d$/), expect.stringMatching(/^\d+\.\d\d$/), '0', expect.stringMatching(/^\d+ MiB$/)]);
    expect(await cells(withWorkers)).toEqual([expect.not.stringContaining('this instance'), 'live', expect.stringMatching(/^up \d+ s$/), expect.stringMatching(/ago$/), '3', '2', expect.stringMatching(/^\d+\.\d$/), expect.stringMatching(/^\d+\.\d\d$/), '0', expect.stringMatching(/^\d+ MiB$/)]);

    await expect.poll(() => memberOf(member).textContent(), { timeout: 15_000 }).toMatch(/healthy · lease renewed \d+ s ago · 0 in flight/);
    expect(await memberOf(member).textContent()).toContain(`(${HOSTILE_IDENTITY})`);
    await expect.poll(() => memberOf(failing).textContent(), { timeout: 15_000 }).toMatch(/failing health checks · static/);
    expect(errors).toEqual([]);
    await fs.mkdir(OUTPUT_DIR, { recursive: true });
    const screenshot = path.join(OUTPUT_DIR, 'fleet.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`status page (fleet) screenshot: ${screenshot}`);
  });

  it('shows a member whose renewals stopped as expired, and drops a SIGKILLed instance once its heartbeat is stale', async () => {
    clearInterval(renewing);
    renewing = undefined;
    await expect.poll(() => memberOf(member).textContent(), { timeout: LEASE_MS + 15_000 }).toMatch(/lease expired \d+ s ago/);
    const withWorkers = instances[1]!;
    await withWorkers.kill();
    await expect.poll(() => rowOf(withWorkers).count(), { timeout: 20_000 }).toBe(0);
    await expect.poll(() => rowOf(instances[0]!).count()).toBe(1);
    expect(errors).toEqual([]);
  });

  it('shows a hostile instance id as text', async () => {
    const now = new Date().toISOString();
    await fleet.putInstance({ id: HOSTILE_INSTANCE, host: 'h', pid: 1, addresses: [], startedAt: now, writtenAt: now, periodMs: 60_000, routesGeneration: 3, workers: 1, certificates: [], traffic: [] });
    await expect.poll(() => page.locator('#instances tbody').textContent(), { timeout: 15_000 }).toContain(HOSTILE_INSTANCE);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });
});
