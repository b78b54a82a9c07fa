/**
 * The ACME account, stored exactly where and how certbot stores it (in the shared storage: on files under
 * the letsencrypt directory `configDir`), so certbot and proximation share one account per CA:
 *
 *   accounts/<host[:port]><directory path>/<id>/private_key.json   the account key as a JWK, 0400
 *                                               regr.json          {"body": {}, "uri": <account URL>}
 *                                               meta.json          {"creation_dt", "creation_host"}
 *
 * `<host[:port]><directory path>` is the directory URL's netloc and path as written (certbot's
 * `server_path`), and `<id>` the MD5 hex digest of the account public key in PEM SubjectPublicKeyInfo
 * form (certbot's `Account.id`). Every directory from accounts/ down is 0700, as certbot makes them.
 *
 * Guarantees:
 * - `find` returns a complete, usable account for this server (one certbot created counts), or
 *   undefined. With several, the oldest (meta.json creation_dt, then id) wins, so every instance picks
 *   the same one. Incomplete or unreadable entries are skipped.
 * - `findOrCreate` registers at most one account across all instances sharing the storage: it takes
 *   the account lock (`proximation/locks/acme-account.lock`), looks again, and only then registers. The
 *   three files are written fenced by that lock, meta.json last: an entry without all three is skipped
 *   by `find` and by certbot (a crash between them leaves such an entry, which nobody uses). If the lock
 *   expired during registration nothing is stored (ERR_ACME_ACCOUNT_LOCK_LOST, or the storage's
 *   ERR_LOCK_LOST when it expires between the writes; the account then exists at the CA unused, which
 *   is harmless).
 * - New account keys are ECDSA P-256 (ES256), which certbot 2.x loads and signs with.
 *
 * Throws ProximationError ERR_ACME_ACCOUNT_LOCK_LOST, the lock's ERR_LOCK_TIMEOUT / ERR_LOCK_IO,
 * the storage's errors, and whatever `register` throws.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { FileStorage, ProximationError, withStorageLock, type Storage, type StorageLock } from '@proximation/shared';

export interface AcmeAccount {
  /** certbot's account id: the directory name, MD5 of the public key PEM. */
  id: string;
  /** The account URL (the `kid` of every request). */
  url: string;
  /** PKCS#8 PEM of the account key. */
  keyPem: string;
  dir: string;
}

/** Registers a new account at the CA with this key and resolves with its URL. */
export type RegisterAccount = (keyPem: string) => Promise<string>;

const ACCOUNT_LOCK = 'proximation/locks/acme-account.lock';

export class AccountStore {
  /** accounts/<server path>, the directory certbot keeps this server's accounts in (under configDir). */
  readonly serverDir: string;
  /** The same as a storage key. */
  private readonly serverKey: string;

  constructor(
    configDir: string,
    directoryUrl: string,
    private readonly storage: Storage = new FileStorage(configDir),
  ) {
    this.serverKey = `accounts/${serverPath(directoryUrl)}`;
    this.serverDir = path.join(configDir, this.serverKey);
  }

  async find(): Promise<AcmeAccount | undefined> {
    const ids = new Set((await this.storage.list(this.serverKey)).map((key) => key.slice(this.serverKey.length + 1).split('/')[0]!));
    const loaded = await Promise.all([...ids].filter((name) => /^[0-9a-f]{32}$/.test(name)).map((name) => this.load(name)));
    const usable = loaded.filter((account): account is LoadedAccount => account !== undefined);
    usable.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.account.id.localeCompare(b.account.id));
    return usable[0]?.account;
  }

  async findOrCreate(register: RegisterAccount): Promise<AcmeAccount> {
    const existing = await this.find();
    if (existing !== undefined) return existing;
    return withStorageLock(this.storage, ACCOUNT_LOCK, async (lock) => {
      const current = await this.find();
      if (current !== undefined) return current;
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
      const url = await register(keyPem);
      if (lock.lost) {
        throw new ProximationError(
          'ERR_ACME_ACCOUNT_LOCK_LOST',
          `the lock ${lock.key} expired while the ACME account was being registered; nothing was stored. ` +
            'The next attempt uses the account another instance stored, or registers again.',
        );
      }
      return this.store(key, keyPem, url, lock);
    });
  }

  private async store(key: KeyObject, keyPem: string, url: string, fence: StorageLock): Promise<AcmeAccount> {
    const id = accountId(key);
    const entry = `${this.serverKey}/${id}`;
    const creationDt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const options = { fence, dirMode: 0o700 };
    await this.storage.write(`${entry}/private_key.json`, JSON.stringify(key.export({ format: 'jwk' })), { mode: 0o400, ...options });
    await this.storage.write(`${entry}/regr.json`, JSON.stringify({ body: {}, uri: url }), { mode: 0o644, ...options });
    // Last: with it the entry is complete (see the header).
    await this.storage.write(`${entry}/meta.json`, JSON.stringify({ creation_dt: creationDt, creation_host: os.hostname() }), { mode: 0o644, ...options });
    return { id, url, keyPem, dir: path.join(this.serverDir, id) };
  }

  private async load(id: string): Promise<LoadedAccount | undefined> {
    const dir = path.join(this.serverDir, id);
    try {
      const [keyJson, regrJson, metaJson] = await Promise.all(
        ['private_key.json', 'regr.json', 'meta.json'].map((name) => this.storage.read(`${this.serverKey}/${id}/${name}`)),
      );
      if (keyJson === undefined || regrJson === undefined || metaJson === undefined) return undefined;
      const key = createPrivateKey({ key: JSON.parse(keyJson.toString('utf8')) as JsonWebKey, format: 'jwk' });
      const regr = JSON.parse(regrJson.toString('utf8')) as { uri?: unknown };
      const meta = JSON.parse(metaJson.toString('utf8')) as { creation_dt?: unknown };
      if (typeof regr.uri !== 'string' || !regr.uri.startsWith('https://')) return undefined;
      return {
        account: { id, url: regr.uri, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, dir },
        createdAt: typeof meta.creation_dt === 'string' ? meta.creation_dt : '',
      };
    } catch {
      // A corrupt or foreign entry is not an account; certbot skips such entries too.
      return undefined;
    }
  }
}

interface LoadedAccount {
  account: AcmeAccount;
  createdAt: string;
}

/** certbot's account id: MD5 hex of the public key's PEM SubjectPublicKeyInfo (Python cryptography's PEM is byte-identical to Node's). */
export function accountId(key: KeyObject): string {
  return createHash('md5').update(createPublicKey(key).export({ type: 'spki', format: 'pem' })).digest('hex');
}

/** certbot's `server_path`: netloc + path of the URL exactly as written (urllib.parse.urlparse). */
export function serverPath(directoryUrl: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)/i.exec(directoryUrl);
  if (match === null || match[1] === '') {
    throw new ProximationError('ERR_CONFIG_INVALID', `ACME directory ${JSON.stringify(directoryUrl)} has no host to key the account directory by.`);
  }
  return `${match[1]}${match[2]}`;
}
