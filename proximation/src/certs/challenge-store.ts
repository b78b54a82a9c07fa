/**
 * Pending ACME challenges, kept in the shared directory so that whichever instance the CA reaches can
 * answer (Let's Encrypt validates from several vantage points; behind a load balancer that is any
 * instance, not necessarily the one that placed the order).
 *
 *   <dir>/http-01/<token>        the key authorization, served at /.well-known/acme-challenge/<token>
 *   <dir>/tls-alpn-01/<name>     the key authorization, for the acme-tls/1 certificate of <name>
 *
 * One plain file per challenge, holding nothing but the key authorization, so that certbot's manual
 * hooks (`certbotManualHooks`) can place HTTP-01 tokens that proximation then serves.
 *
 * Guarantees:
 * - Keys are checked before a path is built: a token is base64url (RFC 8555 8.1), a name a normalised
 *   hostname. `put` and `remove` throw ProximationError ERR_ACME_CHALLENGE_KEY_INVALID for anything else;
 *   `get`, which receives keys from the network, answers undefined for them instead.
 * - `put` is atomic (a reader sees the whole key authorization or nothing) and durable when it resolves;
 *   it throws ERR_FILE_WRITE. `remove` ignores a file that is already gone. `get` reads the file each
 *   time (an open revalidates NFS's cache, so a token another instance wrote a moment ago is seen) and
 *   throws ERR_FILE_READ when the file exists but cannot be read.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ProximationError, inspectHostname, readFileIfExists, writeFileAtomic } from '@proximation/shared';
import type { AcmeChallengeType } from '../config.js';

const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

/** The challenges answered from this store; dns-01 is answered by a DNS provider (dns01/). */
export type StoredChallengeType = Exclude<AcmeChallengeType, 'dns-01'>;

/** Where the challenge store lives in the shared directory. */
export function challengesDir(letsencryptDir: string): string {
  return path.join(letsencryptDir, 'proximation', 'challenges');
}

export class ChallengeStore {
  constructor(readonly dir: string) {}

  async put(type: StoredChallengeType, key: string, keyAuthorization: string): Promise<void> {
    await writeFileAtomic(this.fileFor(type, key), keyAuthorization, { mode: 0o644 });
  }

  async remove(type: StoredChallengeType, key: string): Promise<void> {
    await rm(this.fileFor(type, key), { force: true });
  }

  async get(type: StoredChallengeType, key: string): Promise<string | undefined> {
    if (!isValidKey(type, key)) return undefined;
    return (await readFileIfExists(path.join(this.dir, type, key)))?.toString('utf8');
  }

  private fileFor(type: StoredChallengeType, key: string): string {
    if (!isValidKey(type, key)) {
      throw new ProximationError(
        'ERR_ACME_CHALLENGE_KEY_INVALID',
        `${type} challenge key ${JSON.stringify(key)} is not ${type === 'http-01' ? 'a base64url token' : 'a normalised hostname'}; the CA sent something unexpected.`,
      );
    }
    return path.join(this.dir, type, key);
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
