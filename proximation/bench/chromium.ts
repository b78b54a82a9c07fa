/**
 * For the status page's tests and benchmark: Debian's Chromium (/usr/bin/chromium, scripts/install-system-deps.sh), headless and
 * driven by playwright-core (no browser download), with a fresh profile in a temporary directory that
 * goes with it. `close` ends the browser process and removes the profile; callers call it in a finally
 * or afterEach, so no Chromium outlives its test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** `args` are added to Chromium's command line; `ignoreHTTPSErrors` lets it accept a test's own CA. */
export interface ChromiumOptions {
  args?: readonly string[];
  ignoreHTTPSErrors?: boolean;
}

export async function launchChromium(options: ChromiumOptions = {}): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'proximation-chromium-'));
  const removeProfile = () => rm(profile, { recursive: true, force: true });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...(options.args ?? [])],
      ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
    });
  } catch (err) {
    await removeProfile();
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        await removeProfile();
      }
    },
  };
}
