/**
 * The status page's fleet view in a real browser (headless Chromium, playwright-core): two proximation
 * processes on one shared directory, the page opened on one of them. It lists both instances (this one
 * marked) with generation, workers, rates and RSS; a member registered with a lease shows its lease
 * age, then "lease expired" once its renewals stop; a static upstream failing its health checks shows
 * so; a version staged by `deploy register --no-activate` shows with its preview URL; an instance
 * SIGKILLed leaves the list once its heartbeat is stale; a hostile instance id and member identity
 * are shown as text; fleet records that cannot be read are reported, with this instance listed alone. A screenshot (the one in the README) goes to test-output/status-page/fleet.png.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStorage, fileFleetStorage, readRoutingTableFile, type FleetStorage, type RoutingTable } from '@proximation/shared';
import { runDeploy } from '../../../deploy/test/helpers.js';
import { launchChromium, type Browser } from '../../bench/chromium.js';
import { httpsRequest, startUpstream, tempDir, writeRoutes, type Upstream } from '../support/fixtures.js';
import { startServeProcess, type ServeProcess } from '../support/process.js';
import { BackoffStore } from '../../src/certs/backoff.js';

const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output/status-page/', import.meta.url));
const TOKEN = 'status-page-fleet-token-0123456789';
const HOSTILE_INSTANCE = '<img src=x onerror="window.__pwned=1">';
// An identity is printable ASCII without spaces: this one passes the table's validation.
const HOSTILE_IDENTITY = '<img/src=x/onerror=window.__pwned=2>';
const LEASE_MS = 6_000;

let dir: { path: string; close(): Promise<void> };
let routesPath: string;
let fleet: FleetStorage;
let browser: Browser;
let page: Page;
const errors: string[] = [];
const upstreams: Upstream[] = [];
const instances: ServeProcess[] = [];
let member: Upstream;
let failing: Upstream;
let renewing: NodeJS.Timeout | undefined;

const renew = () => fleet.putLease({ site: 'app', version: 'v1', upstream: member.origin, identity: 'task-1', leaseMs: LEASE_MS, renewedAt: new Date().toISOString() });

async function answering(text: string, status = 200): Promise<Upstream> {
  const upstream = await startUpstream((_req, res) => {
    res.statusCode = status;
    res.end(text);
  });
  upstreams.push(upstream);
  return upstream;
}

beforeAll(async () => {
  dir = await tempDir();
  const state = path.join(dir.path, 'proximation');
  fleet = fileFleetStorage(state);
  routesPath = path.join(state, 'routes.json');
  member = await answering('member');
  failing = await answering('unwell', 503);
  const blog = await answering('blog');
  const joinedAt = new Date().toISOString();
  const table: RoutingTable = {
    schemaVersion: 1,
    generation: 3,
    sites: [
      {
        name: 'app',
        hosts: ['app.test'],
        preview: { domain: 'preview.app.test' },
        activeVersion: 'v1',
        history: [],
        versions: [{
          name: 'v1',
          upstreams: [member.origin, failing.origin],
          registeredAt: joinedAt,
          members: [{ upstream: member.origin, identity: 'task-1', leaseMs: LEASE_MS, joinedAt }],
        }],
      },
      { name: 'blog', hosts: ['blog.test'], activeVersion: 'v1', history: [], versions: [{ name: 'v1', upstreams: [blog.origin], registeredAt: joinedAt }] },
    ],
  };
  await writeRoutes(routesPath, table);
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
  it('lists both instances, this one marked, with generation, workers and RSS, the member with its lease age and health, a staged version with its preview URL', async () => {
    const [single, withWorkers] = instances as [ServeProcess, ServeProcess];
    const staged = await answering('app v2');
    const run = await runDeploy(['register', '--site', 'app', '--version', 'v2', '--upstream', staged.origin, '--no-activate'], { DEPLOY_PROXY_URL: `http://127.0.0.1:${withWorkers.ports.admin}/`, DEPLOY_TOKEN: TOKEN });
    expect(run).toMatchObject({ code: 0 });
    // Some traffic, so that the plots and rates have something to show.
    let traffic = true;
    const sending = (async () => {
      while (traffic) await Promise.all([httpsRequest(single.target, 'app.test'), httpsRequest(single.target, 'blog.test'), new Promise((resolve) => setTimeout(resolve, 200))]);
    })();
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
    expect(await cells(single)).toEqual([expect.stringMatching(/\(this instance\)$/), 'ok', expect.stringMatching(/^up \d+ s$/), expect.stringMatching(/ago$/), '4', '1', expect.stringMatching(/^\d+\.\d$/), expect.stringMatching(/^\d+\.\d\d$/), '0', expect.stringMatching(/^\d+ MiB$/)]);
    expect(await cells(withWorkers)).toEqual([expect.not.stringContaining('this instance'), 'live', expect.stringMatching(/^up \d+ s$/), expect.stringMatching(/ago$/), '4', '2', expect.stringMatching(/^\d+\.\d$/), expect.stringMatching(/^\d+\.\d\d$/), '0', expect.stringMatching(/^\d+ MiB$/)]);

    await expect.poll(() => memberOf(member).textContent(), { timeout: 15_000 }).toMatch(/\(task-1\) · healthy · lease renewed \d+ s ago · \d+ in flight/);
    await expect.poll(() => memberOf(failing).textContent(), { timeout: 15_000 }).toMatch(/failing health checks · static/);
    expect(await page.locator('.site[data-site="app"] a[href="https://v2.preview.app.test/"]').textContent()).toBe('https://v2.preview.app.test/');
    expect(await page.locator('#changes tbody tr').first().textContent()).toMatch(/registerVersion\s*app\s*v2/);
    // Three metrics samples (5 s apart) make the first line of the plots.
    await expect.poll(() => page.locator('.site[data-site="blog"] .plot text').textContent(), { timeout: 30_000 }).toMatch(/^\d+\.\d req\/s/);
    await expect.poll(() => page.locator('.site[data-site="blog"] .plot path.rate').getAttribute('d'), { timeout: 30_000 }).toContain('L');
    traffic = false;
    await sending;
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

  it('shows a hostile instance id, member identity and certificate error as text, the error with its backoff', async () => {
    const now = new Date().toISOString();
    // As the certificate manager records a failed order: the next attempt waits for the backoff.
    const failure = await new BackoffStore(new FileStorage(dir.path)).record('blog.test', `order failed: ${HOSTILE_INSTANCE}`, new Date());
    await fleet.putInstance({ id: HOSTILE_INSTANCE, host: 'h', pid: 1, addresses: [], startedAt: now, writtenAt: now, periodMs: 60_000, routesGeneration: 3, workers: 1, certificates: [], traffic: [] });
    const current = await readRoutingTableFile(routesPath);
    const app = current.sites[0]!;
    const staged = app.versions[1]!;
    await writeRoutes(routesPath, {
      ...current,
      generation: current.generation + 1,
      sites: [{ ...app, versions: [app.versions[0]!, { ...staged, members: [{ upstream: staged.upstreams[0]!, identity: HOSTILE_IDENTITY, leaseMs: LEASE_MS, joinedAt: now }] }] }, ...current.sites.slice(1)],
    });
    await expect.poll(() => page.locator('#instances tbody').textContent(), { timeout: 15_000 }).toContain(HOSTILE_INSTANCE);
    await expect.poll(() => page.locator('.site[data-site="app"]').textContent(), { timeout: 15_000 }).toContain(`(${HOSTILE_IDENTITY})`);
    const certificate = page.locator('#certificates tbody tr:has-text("blog.test")');
    await expect.poll(async () => (await certificate.locator('td').allTextContents()).slice(5), { timeout: 15_000 }).toEqual(['1', `order failed: ${HOSTILE_INSTANCE}`, `not before ${await page.evaluate(`new Date(${failure.nextAttemptAt.getTime()}).toLocaleString()`)}`]);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('says when the fleet records cannot be read, and lists this instance alone', async () => {
    // A symlink to itself where the heartbeats' directory should be: listing it fails (ELOOP) whoever runs the test.
    const records = path.join(dir.path, 'proximation', 'instances');
    await fs.rm(records, { recursive: true, force: true });
    await fs.symlink('instances', records);
    await expect.poll(() => page.locator('#fleet-problem').textContent(), { timeout: 15_000 }).toMatch(/^The fleet records could not be read \(Could not list .*instances.*\); only this instance is listed\.$/);
    expect(await page.locator('#instances tbody tr').allTextContents()).toEqual([expect.stringContaining('(this instance)')]);
    expect(await page.locator('#contact').textContent()).toMatch(/^live/);
    expect(errors).toEqual([]);
    await page.close();
  });
});
