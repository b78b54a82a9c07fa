/**
 * The shared state's storage as every command that reaches it opens it (`serve`, `renew`, `certs`,
 * `status`...): the backend PROXIMATION_STORAGE names (config.ts checked it), connected. On Redis,
 * `openStateStorage` resolves once the server answered, and otherwise throws ERR_STORAGE_AUTH (wrong
 * password or user) or ERR_STORAGE_UNAVAILABLE (unreachable), each naming the URL without its password;
 * the caller exits non-zero with that message. The caller closes what it opened.
 *
 * The certbot copy: on Redis with a letsencrypt directory set (config.certbotCopyDir), certbot's part
 * of the state (live/, archive/, renewal/, accounts/) is also written to that directory in certbot's
 * layout (MirroredStorage), so certbot and file-based tools keep working. `openStateStorage` first
 * brings the directory up to date with Redis (ERR_FILE_WRITE when it cannot); a failed copy of one
 * write later is logged (`log`) and repaired by the next `syncCertbotCopy`, which copies one lineage's
 * files and the accounts (a certificate another instance stored, say); without a copy it does nothing.
 *
 * `routesLocation` says where the routing table is in it: on a directory, the file PROXIMATION_ROUTES
 * names (by default `<letsencrypt dir>/proximation/routes.json`), through a file backend rooted at its
 * directory; on Redis, the key `proximation/routes.json`.
 */
import { FileStorage, MirroredStorage, ROUTES_KEY, errorMessage, openStorageSetting, routesFileLocation, type RoutesLocation, type Storage } from '@proximation/shared';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

/** What certbot reads and renews: the part of the state the certbot copy holds. */
const CERTBOT_PREFIXES = ['live', 'archive', 'renewal', 'accounts'] as const;

export async function openStateStorage(config: Pick<Config, 'storage' | 'certbotCopyDir'>, log?: Logger): Promise<Storage> {
  const storage = await openStorageSetting(config.storage);
  if (config.certbotCopyDir === undefined) return storage;
  const copy = new MirroredStorage(storage, new FileStorage(config.certbotCopyDir), CERTBOT_PREFIXES, (key, err) =>
    log?.error({ key, dir: config.certbotCopyDir, err: errorMessage(err) }, 'could not write the certbot copy; the next certificate check repairs it'),
  );
  try {
    const { copied } = await copy.sync();
    if (copied.length > 0) log?.info({ dir: config.certbotCopyDir, files: copied.length }, 'certbot copy brought up to date');
  } catch (err) {
    await copy.close();
    throw err;
  }
  return copy;
}

/** Brings the certbot copy of `lineage` (and the accounts) up to date; nothing without a copy. */
export async function syncCertbotCopy(storage: Storage, lineage: string): Promise<void> {
  if (storage instanceof MirroredStorage) await storage.sync([`live/${lineage}`, `archive/${lineage}`, `renewal/${lineage}.conf`, 'accounts']);
}

export function routesLocation(config: Pick<Config, 'storage' | 'routesPath'>, storage: Storage): RoutesLocation {
  return config.storage.backend === 'file' ? routesFileLocation(config.routesPath) : { storage, key: ROUTES_KEY };
}
