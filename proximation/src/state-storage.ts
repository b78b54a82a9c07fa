/**
 * The shared state's storage as every command that reaches it opens it (`serve`, `renew`, `certs`,
 * `status`...): the backend PROXIMATION_STORAGE names (config.ts checked it), connected. On Redis,
 * `openStateStorage` resolves once the server answered, and otherwise throws ERR_STORAGE_AUTH (wrong
 * password or user) or ERR_STORAGE_UNAVAILABLE (unreachable), each naming the URL without its password;
 * the caller exits non-zero with that message. The caller closes what it opened.
 *
 * `routesLocation` says where the routing table is in it: on a directory, the file PROXIMATION_ROUTES
 * names (by default `<letsencrypt dir>/proximation/routes.json`), through a file backend rooted at its
 * directory; on Redis, the key `proximation/routes.json`.
 */
import { basename, dirname } from 'node:path';
import { FileStorage, ROUTES_KEY, openStorageSetting, type Storage } from '@proximation/shared';
import type { Config } from './config.js';

export async function openStateStorage(config: Pick<Config, 'storage'>): Promise<Storage> {
  return openStorageSetting(config.storage);
}

export function routesLocation(config: Pick<Config, 'storage' | 'routesPath'>, storage: Storage): { storage: Storage; key: string } {
  return config.storage.backend === 'file'
    ? { storage: new FileStorage(dirname(config.routesPath)), key: basename(config.routesPath) }
    : { storage, key: ROUTES_KEY };
}
