/**
 * The version of deploy: fixed into the single-file bundle when it is built (scripts/bundle.mjs
 * defines DEPLOY_BUNDLED_VERSION), else read from the package.json beside the compiled output.
 */
import { packageVersion } from '@proximation/shared';

declare const DEPLOY_BUNDLED_VERSION: string | undefined;

export function deployVersion(): string {
  // typeof on an undeclared global is safe: outside the bundle the name does not exist at all.
  return typeof DEPLOY_BUNDLED_VERSION === 'string' ? DEPLOY_BUNDLED_VERSION : packageVersion(new URL('../package.json', import.meta.url));
}
