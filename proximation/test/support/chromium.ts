/**
 * Test support: Debian's Chromium (/usr/bin/chromium, scripts/install-system-deps.sh), headless and
 * driven by playwright-core (no browser download), with a fresh profile in a temporary directory that
 * goes with it. `close` ends the browser process and removes the profile; callers call it in a finally
 * or afterEach, so no Chromium outlives its test.
 */
import { chromium, type BrowserContext } from 'playwright-core';
import { tempDir } from './fixtures.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  const profile = await tempDir('proximation-chromium-');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
    });
  } catch (err) {
    await profile.close();
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        await profile.close();
      }
    },
  };
}
