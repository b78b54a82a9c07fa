/**
 * The status page in a real browser (Debian's headless Chromium, driven by playwright-core) against a
 * running proximation with two sites: it loads without console errors, follows a `deploy` switch by
 * itself, rolls a site back (and curl then gets the old version), takes a member out of rotation, says
 * when it lost contact, refuses a wrong token with a clear
 * message, shows hostile text as text, and leaves a screenshot under test-output/status-page/.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDeploy } from '../../../deploy/test/helpers.js';
import { TOKEN, apiRequest } from '../admin/api-request.js';
import { launchChromium, type Browser } from '../../bench/chromium.js';
import { startProxy, startUpstream, table, type Proxy, type Upstream } from '../support/fixtures.js';

const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output/status-page/', import.meta.url));
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

let proxy: Proxy;
let browser: Browser;
const upstreams: Upstream[] = [];
let caFile: string;

async function answering(text: string): Promise<string> {
  const upstream = await startUpstream((_req, res) => res.end(text));
  upstreams.push(upstream);
  return upstream.origin;
}

beforeAll(async () => {
  const [appV1, blogA, blogB] = [await answering('app v1'), await answering('blog a'), await answering('blog b')];
  proxy = await startProxy(
    table([
      { name: 'app', hosts: ['app.test'], upstreams: [appV1] },
      { name: 'blog', hosts: ['blog.test'], upstreams: [blogA, blogB] },
    ]),
    { adminToken: TOKEN, routesPollMs: '100ms' },
  );
  caFile = path.join(proxy.dir, 'ca.pem');
  await fs.writeFile(caFile, proxy.ca);
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  try {
    await browser?.close();
  } finally {
    await proxy?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  }
});

const adminUrl = (): string => `http://127.0.0.1:${proxy.server.admin.port}/`;
const deployEnv = (): NodeJS.ProcessEnv => ({ DEPLOY_PROXY_URL: adminUrl(), DEPLOY_TOKEN: TOKEN });

async function curl(host: string): Promise<string> {
  const port = proxy.server.https.port;
  const { stdout } = await promisify(execFile)('curl', ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`]);
  return stdout;
}

async function openPage(token: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(adminUrl());
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  return { page, errors };
}

const activeOf = (page: Page, site: string) => page.locator(`.site[data-site="${site}"] .active-version`);

describe('the status page in headless Chromium', () => {
  let page: Page;
  let errors: string[];

  it('loads with both sites and no console errors, with strict security headers', async () => {
    ({ page, errors } = await openPage(TOKEN));
    await expect.poll(() => activeOf(page, 'app').textContent(), { timeout: 15_000 }).toBe('v1');
    await expect.poll(() => activeOf(page, 'blog').textContent(), { timeout: 15_000 }).toBe('v1');
    await expect.poll(() => page.locator('#contact').textContent(), { timeout: 15_000 }).toMatch(/^live/);
    expect(errors).toEqual([]);
    const answer = await apiRequest(proxy, 'GET', '/', { token: null });
    expect(answer.headers['content-security-policy']).toContain("script-src 'self'");
    expect(answer.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    expect(answer.headers['referrer-policy']).toBe('no-referrer');
  });

  it('shows a version switch made by deploy within seconds, without reload', async () => {
    const appV2 = await answering('app v2');
    const run = await runDeploy(['register', '--site', 'app', '--version', 'v2', '--upstream', appV2, '--health-timeout', '10s'], deployEnv());
    expect(run).toMatchObject({ code: 0 });
    expect(await curl('app.test')).toBe('app v2');
    await expect.poll(() => activeOf(page, 'app').textContent(), { timeout: 10_000 }).toBe('v2');
    // The change log names the deploy command's user and host.
    await expect.poll(() => page.locator('#changes tbody tr').first().textContent(), { timeout: 10_000 }).toMatch(/activateVersion\s*app\s*v2\s*\S+ on \S+ via admin-api/);
  });

  it('rolls a site back from the page, after a confirmation, and curl gets the previous version', async () => {
    const questions: string[] = [];
    page.once('dialog', (dialog) => {
      questions.push(dialog.message());
      void dialog.accept();
    });
    await page.locator('.site[data-site="app"] button', { hasText: 'Roll back' }).click();
    await expect.poll(() => page.locator('#message').textContent(), { timeout: 15_000 }).toMatch(/^Done: rollback on app/);
    // The page shows the table this instance serves, which takes the change at its next poll.
    await expect.poll(() => activeOf(page, 'app').textContent(), { timeout: 10_000 }).toBe('v1');
    expect(questions).toEqual([expect.stringContaining('Roll app back')]);
    expect(await curl('app.test')).toBe('app v1');
    await expect.poll(() => page.locator('#changes tbody tr').first().textContent(), { timeout: 10_000 }).toMatch(/rollback.*app.*v1.*via status-page/);
    expect(errors).toEqual([]);
  });

  it('takes a member out of rotation after a confirmation, and curl then gets only the others', async () => {
    const blogB = upstreams[2]!.origin;
    page.once('dialog', (dialog) => void dialog.accept());
    await page.locator(`.site[data-site="blog"] li[data-member="${blogB}"] button`).click();
    await expect.poll(() => page.locator('#message').textContent(), { timeout: 15_000 }).toMatch(/^Done: registerVersion on blog/);
    for (let i = 0; i < 4; i += 1) expect(await curl('blog.test')).toBe('blog a');
    await expect.poll(() => page.locator(`.site[data-site="blog"] li[data-member="${blogB}"]`).count(), { timeout: 10_000 }).toBe(0);
  });

  it('says when it lost contact, and recovers by itself', async () => {
    // The browser's own network stack fails the polls, as with a dropped tunnel.
    await page.route('**/api/overview*', (route) => route.abort('connectionrefused'));
    await expect.poll(() => page.locator('#contact').textContent(), { timeout: 15_000 }).toMatch(/^contact lost since/);
    expect(await page.locator('#contact').getAttribute('class')).toContain('lost');
    await page.unroute('**/api/overview*');
    await expect.poll(() => page.locator('#contact').textContent(), { timeout: 15_000 }).toMatch(/^live/);
    errors.length = 0; // the refused requests were logged as console errors on purpose
  });

  it('shows hostile text from the change log as text', async () => {
    const answer = await apiRequest(proxy, 'POST', '/api/routes/changes', {
      body: { change: { op: 'activateVersion', site: 'app', version: 'v2' } },
      headers: { 'content-type': 'application/json', 'user-agent': HOSTILE, 'proximation-actor-user': HOSTILE },
    });
    expect(answer.status).toBe(200);
    await expect.poll(() => page.locator('#changes tbody tr').first().textContent(), { timeout: 10_000 }).toContain(HOSTILE);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    await fs.mkdir(OUTPUT_DIR, { recursive: true });
    const screenshot = path.join(OUTPUT_DIR, 'status-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`status page screenshot: ${screenshot}`);
    await page.close();
  });

  it('refuses a wrong token with a clear message and asks again', async () => {
    const { page: wrong } = await openPage('wrong-token-0123456789abcdef');
    await expect.poll(() => wrong.locator('#login-error').textContent(), { timeout: 15_000 }).toMatch(/refused this admin token.*wrong/);
    expect(await wrong.locator('#login').isVisible()).toBe(true);
    expect(await wrong.evaluate("sessionStorage.getItem('proximation-admin-token')")).toBeNull();
    await wrong.close();
  });
});
