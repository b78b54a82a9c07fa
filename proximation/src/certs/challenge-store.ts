/**
 * Pending ACME challenges, kept in the shared storage (storage.ts) so that whichever instance the CA reaches can
 * answer (Let's Encrypt validates from several vantage points; behind a load balancer that is any
 * instance, not necessarily the one that placed the order).
 *
 *   proximation/challenges/http-01/<token>      the key authorization, served at /.well-known/acme-challenge/<token>
 *   proximation/challenges/tls-alpn-01/<name>   the key authorization, for the acme-tls/1 certificate of <name>
 *
 * One plain value per challenge, holding nothing but the key authorization, so that on the file backend
 * (under the letsencrypt directory) certbot's manual hooks (`certbotManualHooks`) can place HTTP-01 tokens
 * that proximation then serves. On Redis those hooks write files proximation does not read.
 *
 * Guarantees:
 * - Keys are checked before a path is built: a token is base64url (RFC 8555 8.1), a name a normalised
 *   hostname. `put` and `remove` throw ProximationError ERR_ACME_CHALLENGE_KEY_INVALID for anything else;
 *   `get`, which receives keys from the network, answers undefined for them instead.
 * - `put` is atomic (a reader sees the whole key authorization or nothing) and durable when it resolves.
 *   `remove` ignores a challenge that is already gone. `get` reads the storage each time (on NFS an open
 *   revalidates the cache, so a token another instance wrote a moment ago is seen). All pass on the
 *   storage's errors (ERR_FILE_WRITE / ERR_FILE_READ, ERR_STORAGE_UNAVAILABLE).
 */
import path from 'node:path';
import { FileStorage, ProximationError, inspectHostname, type Storage } from '@proximation/shared';
import type { AcmeChallengeType } from '../config.js';

const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

/** The challenges answered from this store; dns-01 is answered by a DNS provider (dns01/). */
export type StoredChallengeType = Exclude<AcmeChallengeType, 'dns-01'>;

export class ChallengeStore {
  /** The challenges' directory on the file backend, which certbot's manual hooks write into. */
  readonly dir: string;

  constructor(
    letsencryptDir: string,
    private readonly storage: Storage = new FileStorage(letsencryptDir),
  ) {
    this.dir = path.join(letsencryptDir, 'proximation', 'challenges');
  }

  async put(type: StoredChallengeType, key: string, keyAuthorization: string): Promise<void> {
    await this.storage.write(this.keyFor(type, key), keyAuthorization, { mode: 0o644 });
  }

  async remove(type: StoredChallengeType, key: string): Promise<void> {
    await this.storage.delete(this.keyFor(type, key));
  }

  async get(type: StoredChallengeType, key: string): Promise<string | undefined> {
    if (!isValidKey(type, key)) return undefined;
    return (await this.storage.read(`proximation/challenges/${type}/${key}`))?.toString('utf8');
  }

  private keyFor(type: StoredChallengeType, key: string): string {
    if (!isValidKey(type, key)) {
      throw new ProximationError(
        'ERR_ACME_CHALLENGE_KEY_INVALID',
        `${type} challenge key ${JSON.stringify(key)} is not ${type === 'http-01' ? 'a base64url token' : 'a normalised hostname'}; the CA sent something unexpected.`,
      );
    }
    return `proximation/challenges/${type}/${key}`;
  }
}

function isValidKey(type: StoredChallengeType, key: string): boolean {
  if (type === 'http-01') return TOKEN.test(key);
  const inspected = inspectHostname(key, false);
  return 'hostname' in inspected && inspected.hostname === key;
}

/**
 * Shell commands for certbot's manual authenticator that place and remove HTTP-01 tokens where
 * proximation serves them, so `certbot renew` works while proximation holds port 80. certbot runs them
 * with /bin/sh and passes CERTBOT_TOKEN (base64url, safe unquoted) and CERTBOT_VALIDATION.
 */
export function certbotManualHooks(store: ChallengeStore): { authHook: string; cleanupHook: string } {
  const dir = shellQuote(path.join(store.dir, 'http-01'));
  return {
    authHook: `mkdir -p ${dir} && printf %s "$CERTBOT_VALIDATION" > ${dir}/"$CERTBOT_TOKEN"`,
    cleanupHook: `rm -f ${dir}/"$CERTBOT_TOKEN"`,
  };
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
