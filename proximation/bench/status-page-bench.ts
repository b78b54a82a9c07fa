/**
 * The status page at 1,000 sites: a proximation process (admin API on) serves a routing table of
 * 1,000 sites with two versions each; headless Chromium (chromium.ts) opens the page with the token
 * already in the tab's session, ROUNDS times in fresh tabs. Measured: from navigation start until the
 * first page of sites is on screen ("1–25 of 1000"), and the size of one GET /api/overview answer.
 * Writes results/status-page.json and prints the figures.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.js';
import { ChildSupervisor, type Service } from './children.js';
import { freePorts } from './ports.js';
import { fetchLocal, pollUntilReady } from './readiness.js';

const proximationCli = fileURLToPath(new URL('../dist/bin/proximation.js', import.meta.url));
const SITES = 1000;
const ROUNDS = 5;
const TOKEN = 'status-page-benchmark-token-0123456789';

function routingTable(): string {
  const registeredAt = new Date().toISOString();
  const sites = Array.from({ length: SITES }, (_, i) => ({
    name: `site-${i}`,
    hosts: [`site-${i}.example.com`],
    activeVersion: 'v2',
    history: ['v1'],
    versions: ['v1', 'v2'].map((name, n) => ({ name, upstreams: [`http://10.0.${n}.${i % 250}:8080`], registeredAt })),
  }));
  return `${JSON.stringify({ schemaVersion: 1, generation: 1, sites })}\n`;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'proximation-status-page-bench-'));
  const children = new ChildSupervisor(dir);
  let service: Service | undefined;
  const browser = await launchChromium();
  try {
    const le = join(dir, 'le');
    await mkdir(join(le, 'proximation'), { recursive: true });
    await writeFile(join(le, 'proximation', 'routes.json'), routingTable());
    const [httpPort, httpsPort, adminPort] = (await freePorts(3)) as [number, number, number];
    service = await children.start({
      name: 'proximation',
      command: process.execPath,
      args: [proximationCli, 'serve'],
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        PROXIMATION_HTTP_PORT: String(httpPort),
        PROXIMATION_HTTPS_PORT: String(httpsPort),
        PROXIMATION_ADMIN_PORT: String(adminPort),
        PROXIMATION_LISTEN_ADDRESS: '127.0.0.1',
        PROXIMATION_LETSENCRYPT_DIR: le,
        PROXIMATION_ADMIN_TOKEN: TOKEN,
        PROXIMATION_LOG_LEVEL: 'warn',
      },
    });
    const ready = service;
    await pollUntilReady('proximation /healthz', 60_000, [ready], async () => {
      const { status } = await fetchLocal(adminPort, '/healthz');
      if (status !== 200) throw new Error(`/healthz answered ${status}`);
    });
    const origin = `http://127.0.0.1:${adminPort}/`;
    const overviewBytes = await pollUntilReady('GET /api/overview', 60_000, [ready], async () => {
      const answer = await fetch(`${origin}api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } });
      if (answer.status !== 200) throw new Error(`answered ${answer.status}`);
      return (await answer.arrayBuffer()).byteLength;
    });
    const loadMs: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const page = await browser.context.newPage();
      await page.addInitScript(`sessionStorage.setItem('proximation-admin-token', ${JSON.stringify(TOKEN)})`);
      const started = performance.now();
      await page.goto(origin);
      // Locators, not a string predicate: the page's CSP forbids eval, which waitForFunction would need.
      await page.locator('#page', { hasText: `1–25 of ${SITES}` }).waitFor({ timeout: 60_000 });
      await page.locator('.site').nth(24).waitFor({ timeout: 60_000 });
      loadMs.push(performance.now() - started);
      await page.close();
    }
    const sorted = [...loadMs].sort((a, b) => a - b);
    const results = { finishedAt: new Date().toISOString(), sites: SITES, rounds: ROUNDS, overviewBytes, loadMs: loadMs.map((ms) => Math.round(ms)), medianMs: Math.round(sorted[Math.floor(ROUNDS / 2)]!) };
    await writeFile(fileURLToPath(new URL('../bench/results/status-page.json', import.meta.url)), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`status page at ${SITES} sites: load to first page of sites, median ${results.medianMs} ms over ${ROUNDS} fresh tabs (${results.loadMs.join(', ')} ms); GET /api/overview ${(overviewBytes / 1024).toFixed(0)} KiB`);
  } finally {
    await browser.close();
    if (service !== undefined) await children.stop(service);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
