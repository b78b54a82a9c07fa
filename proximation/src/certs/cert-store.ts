/**
 * Certificate storage in certbot's layout, through the shared storage (storage.ts): on the file backend
 * the directory `configDir` (e.g. /etc/letsencrypt) itself, so certbot, nginx and other tools can use
 * what we write, and we can use what certbot writes; on Redis the same keys. `configDir` is also what the
 * paths in messages and renewal files name (on Redis the local certbot copy, when there is one).
 *
 *   archive/<lineage>/{cert,chain,fullchain,privkey}N.pem   immutable once written; N = 1, 2, ...
 *   live/<lineage>/{cert,chain,fullchain,privkey}.pem       relative symlinks: ../../archive/<lineage>/certN.pem
 *
 * Guarantees:
 * - Lineage names are checked before any path is built: a normalised hostname, or `_wildcard.<hostname>`
 *   for a wildcard (lineage-name.ts) (`write`), optionally followed
 *   by certbot's `-NNNN` suffix (`read`, `liveDir`, `archiveDir`, and the entries `list` returns). `..`, `/`
 *   and other path syntax never reach the file system.
 * - `write` stores a new version N = 1 + the highest N in archive/<lineage> (each file written atomically and
 *   fsynced; privkey 0600, the others 0644; live/ and archive/ directories created 0700), then switches each
 *   live link atomically (storage links: a new symlink under a temporary name, renamed over the old one).
 *   With `fence` (the per-name lock) nothing more is written once the lock is lost (ERR_LOCK_LOST; on
 *   Redis checked atomically with each write). It refuses files whose
 *   key does not match the certificate, so it never creates a lineage that certbot would reject.
 *   `fullchain` is `cert + chain` byte for byte. The caller holds the per-name lock: two concurrent writers of
 *   one lineage could pick the same N. renewal/<lineage>.conf is not written here.
 * - Link switch order is cert, chain, fullchain, privkey: the order in which nginx, HAProxy and most servers
 *   load them (certificate, then key). For a reader that opens the certificate d before the key, and links
 *   switched g apart, the window in which the reader pairs two versions is |g - d| wide when the writer
 *   switches in the reader's order, and g + d in the opposite order. `read` opens both files at once (d ~ 0).
 *   No order makes two links one atomic unit, which is why `read` verifies the pair.
 * - `read` returns a certificate whose private key matches it, or undefined when live/<lineage> does not
 *   exist. certbot switches links with unlink + symlink (not atomic) and in its own order, so a missing file,
 *   an unparseable file or a key that does not match is retried (READ_ATTEMPTS times, READ_RETRY_MS apart,
 *   about one second in all) before giving up.
 *
 * Throws `ProximationError`:
 * - ERR_CERT_LINEAGE_NAME_INVALID: the lineage name is not a normalised hostname (plus `-NNNN` when reading).
 * - ERR_CERT_LINEAGE_INVALID: live/<lineage> exists but still has no usable matching certificate and key after
 *   the retries; the message names the file and the problem.
 * - ERR_CERT_FILES_INVALID: `write` got a certificate that does not parse, is not exactly one certificate, or
 *   does not match the key.
 * `write` and `list` pass on the storage's failures (ERR_FILE_WRITE / ERR_FILE_READ, ERR_STORAGE_UNAVAILABLE,
 * ERR_LOCK_LOST).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { FileStorage, ProximationError, errorMessage, normalizeHostname, type Storage, type StorageLock } from '@proximation/shared';
import { lineageHost, lineageName } from './lineage-name.js';

/** What an issuer hands over: leaf certificate, intermediates (may be empty), private key (PEM). */
export interface CertificateFiles {
  certPem: string;
  chainPem: string;
  keyPem: string;
}

export interface LoadedCertificate {
  lineage: string;
  certPem: string;
  chainPem: string;
  fullchainPem: string;
  keyPem: string;
  /** DNS subjectAltNames, lower case, in certificate order. */
  names: string[];
  notBefore: Date;
  notAfter: Date;
  /** Issuer distinguished name in certificate order, e.g. `C=US, O=Let's Encrypt, CN=R11`. */
  issuer: string;
  /** Lower-case hex without leading zeros, as certbot prints it. */
  serialNumber: string;
}

const READ_ATTEMPTS = 10;
const READ_RETRY_MS = 100;

/** Link switch order; see the header for why the key comes last. */
const KINDS = ['cert', 'chain', 'fullchain', 'privkey'] as const;
type Kind = (typeof KINDS)[number];

const ARCHIVE_FILE = /^(?:cert|chain|fullchain|privkey)(\d+)\.pem$/;
const CERTBOT_SUFFIX = /^(.+)(-\d{4})$/;
const END_OF_LEAF = /-----END CERTIFICATE-----\r?\n?/;
const BEGIN_CERTIFICATE = '-----BEGIN CERTIFICATE-----';

type Attempt = { cert: LoadedCertificate } | { absent: true } | { problem: string; cause?: unknown };

export class CertStore {
  readonly configDir: string;
  readonly storage: Storage;

  constructor(configDir: string, storage: Storage = new FileStorage(configDir)) {
    this.configDir = configDir;
    this.storage = storage;
  }

  liveDir(lineage: string): string {
    return join(this.configDir, 'live', checkLineageName(lineage, true));
  }

  archiveDir(lineage: string): string {
    return join(this.configDir, 'archive', checkLineageName(lineage, true));
  }

  async read(lineage: string): Promise<LoadedCertificate | undefined> {
    const live = this.liveDir(lineage);
    for (let attempt = 1; ; attempt++) {
      const result = await readOnce(this.storage, lineage, live);
      if ('cert' in result) return result.cert;
      if ('absent' in result) return undefined;
      if (attempt === READ_ATTEMPTS) {
        throw new ProximationError(
          'ERR_CERT_LINEAGE_INVALID',
          `certificate lineage ${live}: ${result.problem} (still after ${READ_ATTEMPTS} attempts). ` +
            'Repair or remove the lineage, or let it be issued again.',
          { cause: result.cause },
        );
      }
      await delay(READ_RETRY_MS);
    }
  }

  async write(lineage: string, files: CertificateFiles, options: { fence?: StorageLock } = {}): Promise<{ version: number }> {
    checkLineageName(lineage, false);
    const contents = prepareFiles(lineage, files);
    const version = (await this.highestVersion(lineage)) + 1;
    const written = { dirMode: 0o700, ...options };
    for (const kind of KINDS) {
      await this.storage.write(`archive/${lineage}/${kind}${version}.pem`, contents[kind], { mode: kind === 'privkey' ? 0o600 : 0o644, ...written });
    }
    for (const kind of KINDS) {
      await this.storage.link(`live/${lineage}/${kind}.pem`, `archive/${lineage}/${kind}${version}.pem`, written);
    }
    return { version };
  }

  async list(): Promise<string[]> {
    const lineages = new Set((await this.storage.list('live')).map((key) => key.split('/')[1]!));
    // certbot keeps a README next to the lineages; anything whose name we would refuse to read is not one.
    return [...lineages].filter(isLineageName).sort();
  }

  private async highestVersion(lineage: string): Promise<number> {
    let highest = 0;
    for (const key of await this.storage.list(`archive/${lineage}`)) {
      const version = ARCHIVE_FILE.exec(key.slice(key.lastIndexOf('/') + 1))?.[1];
      if (version !== undefined) highest = Math.max(highest, Number(version));
    }
    return highest;
  }
}

async function readOnce(storage: Storage, lineage: string, live: string): Promise<Attempt> {
  const fullchainPath = join(live, 'fullchain.pem');
  const keyPath = join(live, 'privkey.pem');
  let fullchainPem: string;
  let keyPem: string;
  try {
    // Both at once: the closer together the two opens, the less likely a link switch falls between them.
    const [fullchain, key] = await Promise.all([storage.read(`live/${lineage}/fullchain.pem`), storage.read(`live/${lineage}/privkey.pem`)]);
    if (fullchain === undefined || key === undefined) {
      if ((await storage.list(`live/${lineage}`)).length === 0) return { absent: true };
      return { problem: `cannot read: ${fullchain === undefined ? fullchainPath : keyPath} is missing` };
    }
    [fullchainPem, keyPem] = [fullchain.toString('utf8'), key.toString('utf8')];
  } catch (err) {
    return { problem: `cannot read: ${errorMessage(err)}`, cause: err };
  }
  const endOfLeaf = END_OF_LEAF.exec(fullchainPem);
  if (endOfLeaf === null) return { problem: `${fullchainPath} contains no certificate` };
  const cut = endOfLeaf.index + endOfLeaf[0].length;
  const certPem = fullchainPem.slice(0, cut);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
      return { problem: `${keyPath} does not match the certificate in ${fullchainPath}` };
    }
  } catch (err) {
    return { problem: `cannot parse ${fullchainPath} or ${keyPath}: ${errorMessage(err)}`, cause: err };
  }
  return {
    cert: {
      lineage,
      certPem,
      chainPem: fullchainPem.slice(cut),
      fullchainPem,
      keyPem,
      names: dnsNames(leaf),
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
      issuer: leaf.issuer.split('\n').join(', '),
      serialNumber: BigInt(`0x${leaf.serialNumber}`).toString(16),
    },
  };
}

/**
 * DNS entries of node's subjectAltName rendering: `DNS:a.example, IP Address:..., DNS:"<JSON string>"`.
 * Node quotes any value with a comma or other special character (commas as \u002c), so ", " only ever
 * separates entries.
 */
function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice('DNS:'.length))
    .map((value) => (value.startsWith('"') ? (JSON.parse(value) as string) : value).toLowerCase());
}

/** Returns the file contents to store, PEM blocks ending in a newline so that fullchain = cert + chain parses. */
function prepareFiles(lineage: string, files: CertificateFiles): Record<Kind, string> {
  const cert = withFinalNewline(files.certPem);
  const chain = files.chainPem.trim() === '' ? '' : withFinalNewline(files.chainPem);
  const privkey = withFinalNewline(files.keyPem);
  const invalid = (reason: string, cause?: unknown) =>
    new ProximationError('ERR_CERT_FILES_INVALID', `certificate for lineage ${lineage}: ${reason}`, { cause });
  if (cert.split(BEGIN_CERTIFICATE).length !== 2) {
    throw invalid('certPem must hold exactly one certificate (the leaf; intermediates go in chainPem)');
  }
  let matches: boolean;
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(privkey));
  } catch (err) {
    throw invalid(`cannot parse the certificate or the key: ${errorMessage(err)}`, err);
  }
  if (!matches) throw invalid('the private key does not match the certificate');
  return { cert, chain, fullchain: cert + chain, privkey };
}

function checkLineageName(name: string, allowCertbotSuffix: boolean): string {
  const suffixed = allowCertbotSuffix ? CERTBOT_SUFFIX.exec(name) : null;
  const raw = suffixed?.[1] ?? name;
  const host = lineageHost(raw);
  let normal: string;
  try {
    normal = normalizeHostname(host, { allowWildcard: true, field: 'certificate lineage name' });
  } catch (err) {
    throw new ProximationError('ERR_CERT_LINEAGE_NAME_INVALID', errorMessage(err), { cause: err });
  }
  if (lineageName(normal) !== raw) {
    throw new ProximationError(
      'ERR_CERT_LINEAGE_NAME_INVALID',
      `certificate lineage name ${JSON.stringify(name)} is not in normal form: use ${JSON.stringify(lineageName(normal) + (suffixed?.[2] ?? ''))}`,
    );
  }
  return name;
}

function isLineageName(name: string): boolean {
  try {
    checkLineageName(name, true);
    return true;
  } catch {
    return false;
  }
}

function withFinalNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
