/**
 * The embedded certificate authority, used when no ACME CA is configured (local development, demos, tests).
 *
 * Contract:
 * - `LocalCa.open(dir)` loads the CA stored in `dir` (`root.pem`, 0644, and `root-key.pem`, 0600, PKCS#8), or
 *   creates it once: an ECDSA P-256 root valid for 10 years. With `at`, the same keys under `at.prefix` in
 *   a shared storage (`dir` then only names it in messages). Creation runs under the lock `<dir>/.lock` and
 *   re-checks after taking the lock, writing fenced by it, so any number of instances (processes, machines
 *   on a shared volume or one Redis) that open the same CA end up with ONE root. `root.pem` is written after `root-key.pem`, so its presence
 *   marks a complete CA: a missing root.pem means "not created yet" (a half-created CA is replaced).
 * - `issue(names)` returns a fresh ECDSA P-256 key and a server certificate for those DNS names, signed by the
 *   root, in the shape `CertStore.write` takes (chain = the root, so clients that trust `rootPem` verify it).
 *   The names must already be normalised (lower case, A-labels); they are not re-validated here.
 *
 * Throws `ProximationError`:
 * - ERR_LOCAL_CA_INVALID: root.pem exists but the CA cannot be used (unparseable, not a CA, key missing or not
 *   matching, not P-256, no subjectKeyIdentifier). Nothing is overwritten: the message says to remove the directory to start over.
 * - ERR_LOCAL_CA_REQUEST_INVALID: `issue` got no names or a validity that is not a positive number of days.
 * - ERR_LOCAL_CA_LOCK_LOST: the creation lock expired before anything was written (this process stalled for
 *   longer than the lease); opening again loads or creates the CA.
 * - whatever the lock throws when it cannot be taken (ERR_LOCK_TIMEOUT, ERR_LOCK_IO), and the storage's
 *   errors (ERR_FILE_READ / ERR_FILE_WRITE, ERR_STORAGE_UNAVAILABLE, ERR_LOCK_LOST).
 */
import { KeyObject, X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { FileStorage, ProximationError, errorMessage, withStorageLock, type Storage, type StorageLock } from '@proximation/shared';
import type { CertificateFiles } from './cert-store.js';

// @peculiar/x509 generates and signs through a WebCrypto provider: node's own, explicitly.
x509.cryptoProvider.set(webcrypto);

/** Where a CA's two keys are: `<prefix>root.pem` and `<prefix>root-key.pem` in `storage`. */
export interface LocalCaLocation {
  storage: Storage;
  prefix: string;
}

const ROOT_FILE = 'root.pem';
const ROOT_KEY_FILE = 'root-key.pem';
const ROOT_VALIDITY_DAYS = 3650;
const DEFAULT_LEAF_VALIDITY_DAYS = 90;
const DAY_MS = 86_400_000;
// Backdating absorbs clock differences between the issuing instance and its clients.
const BACKDATE_MS = 3_600_000;
// X.520 upper bound for a commonName; longer names go in the SAN only.
const MAX_COMMON_NAME = 64;

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export class LocalCa {
  readonly rootPem: string;
  private readonly root: x509.X509Certificate;
  private readonly rootKey: webcrypto.CryptoKey;
  private readonly rootKeyId: string;

  private constructor(rootPem: string, root: x509.X509Certificate, rootKey: webcrypto.CryptoKey, rootKeyId: string) {
    this.rootPem = rootPem;
    this.root = root;
    this.rootKey = rootKey;
    this.rootKeyId = rootKeyId;
  }

  static async open(dir: string, at: LocalCaLocation = { storage: new FileStorage(dir), prefix: '' }): Promise<LocalCa> {
    const existing = await LocalCa.load(dir, at);
    if (existing) return existing;
    // The directory holds the root's private key: 0700 from its creation, before the lock file lands in it.
    return withStorageLock(at.storage, `${at.prefix}.lock`, async (lock) => (await LocalCa.load(dir, at)) ?? LocalCa.create(dir, at, lock), { dirMode: 0o700 });
  }

  async issue(names: string[], options: { validityDays?: number } = {}): Promise<CertificateFiles> {
    const validityDays = options.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS;
    if (names.length === 0) {
      throw new ProximationError('ERR_LOCAL_CA_REQUEST_INVALID', 'local CA: a certificate needs at least one DNS name');
    }
    if (!Number.isFinite(validityDays) || validityDays <= 0) {
      throw new ProximationError(
        'ERR_LOCAL_CA_REQUEST_INVALID',
        `local CA: validityDays must be a positive number of days, got ${validityDays} (for ${names.join(', ')})`,
      );
    }
    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const commonName = names[0]!.length <= MAX_COMMON_NAME ? names[0] : undefined;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: commonName === undefined ? undefined : [{ CN: [commonName] }],
      issuer: this.root.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + validityDays * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: this.rootKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
        new x509.SubjectAlternativeNameExtension(
          names.map((value) => ({ type: 'dns', value })),
          commonName === undefined,
        ),
        new x509.AuthorityKeyIdentifierExtension(this.rootKeyId),
      ],
    });
    return { certPem: toPem(cert), chainPem: this.rootPem, keyPem: exportPkcs8(keys.privateKey) };
  }

  private static async create(dir: string, at: LocalCaLocation, lock: StorageLock): Promise<LocalCa> {
    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: [{ CN: [`proximation local CA ${randomBytes(4).toString('hex')}`] }],
      keys,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + ROOT_VALIDITY_DAYS * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ski,
      ],
    });
    const rootPem = toPem(root);
    if (lock.lost) {
      throw new ProximationError(
        'ERR_LOCAL_CA_LOCK_LOST',
        `local CA in ${dir}: the lock ${lock.key} expired while the CA was being created (another instance may ` +
          'be creating one now); nothing was written. Open it again.',
      );
    }
    // Key first: root.pem is what marks the CA as complete for readers that do not take the lock.
    const written = { fence: lock, dirMode: 0o700 };
    await at.storage.write(`${at.prefix}${ROOT_KEY_FILE}`, exportPkcs8(keys.privateKey), { mode: 0o600, ...written });
    await at.storage.write(`${at.prefix}${ROOT_FILE}`, rootPem, { mode: 0o644, ...written });
    return new LocalCa(rootPem, root, keys.privateKey, ski.keyId);
  }

  private static async load(dir: string, at: LocalCaLocation): Promise<LocalCa | undefined> {
    const rootPath = join(dir, ROOT_FILE);
    const rootBytes = await at.storage.read(`${at.prefix}${ROOT_FILE}`);
    if (rootBytes === undefined) return undefined;
    const keyPath = join(dir, ROOT_KEY_FILE);
    const invalid = (reason: string, cause?: unknown) =>
      new ProximationError(
        'ERR_LOCAL_CA_INVALID',
        `local CA in ${dir}: ${reason}. Remove the directory to create a new CA (clients must then trust the new root).`,
        { cause },
      );
    const keyBytes = await at.storage.read(`${at.prefix}${ROOT_KEY_FILE}`);
    if (keyBytes === undefined) throw invalid(`${rootPath} exists but ${keyPath} is missing`);
    let key: KeyObject;
    let nodeCert: X509Certificate;
    let root: x509.X509Certificate;
    try {
      nodeCert = new X509Certificate(rootBytes);
      root = new x509.X509Certificate(rootBytes.toString('utf8'));
      key = createPrivateKey(keyBytes);
    } catch (err) {
      throw invalid(`cannot parse ${rootPath} or ${keyPath}: ${errorMessage(err)}`, err);
    }
    if (!nodeCert.ca) throw invalid(`${rootPath} is not a CA certificate`);
    if (!nodeCert.checkPrivateKey(key)) throw invalid(`${keyPath} does not match ${rootPath}`);
    const keyId = root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    if (keyId === undefined) throw invalid(`${rootPath} has no subjectKeyIdentifier`);
    let rootKey: webcrypto.CryptoKey;
    try {
      rootKey = await webcrypto.subtle.importKey(
        'pkcs8',
        key.export({ type: 'pkcs8', format: 'der' }),
        KEY_ALGORITHM,
        false,
        ['sign'],
      );
    } catch (err) {
      throw invalid(`${keyPath} is not an ECDSA P-256 key: ${errorMessage(err)}`, err);
    }
    return new LocalCa(rootBytes.toString('utf8'), root, rootKey, keyId);
  }
}

/** 16 random bytes read as a positive DER INTEGER of exactly 16 bytes (sign bit clear, first byte non-zero). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function toPem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

function exportPkcs8(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}
