/**
 * Certificate storage in certbot's layout under `configDir` (e.g. /etc/letsencrypt), so certbot, nginx and
 * other tools can use what we write, and we can use what certbot writes.
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
 *   live link atomically (new symlink under a temporary name, renamed over the old one). It refuses files whose
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
 * `write` and `list` pass on file-system failures: ERR_FILE_WRITE from the atomic file writes, and the system
 * errors (EACCES, ENOSPC...) of mkdir, symlink, rename and readdir unchanged.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { access, mkdir, readFile, readdir, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ProximationError,
  errorMessage,
  fsyncDirectory,
  isErrnoCode,
  normalizeHostname,
  writeFileAtomic,
} from '@proximation/shared';
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

  constructor(configDir: string) {
    this.configDir = configDir;
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
      const result = await readOnce(lineage, live);
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

  async write(lineage: string, files: CertificateFiles): Promise<{ version: number }> {
    checkLineageName(lineage, false);
    const contents = prepareFiles(lineage, files);
    const archive = this.archiveDir(lineage);
    const live = this.liveDir(lineage);
    await mkdir(this.configDir, { recursive: true });
    const createdArchive = await mkdir(archive, { recursive: true, mode: 0o700 });
    const createdLive = await mkdir(live, { recursive: true, mode: 0o700 });
    if (createdArchive !== undefined || createdLive !== undefined) {
      // New directory entries are only durable once their parents are synced.
      for (const dir of [this.configDir, dirname(archive), dirname(live)]) await fsyncDirectory(dir);
    }
    const version = (await highestVersion(archive)) + 1;
    for (const kind of KINDS) {
      await writeFileAtomic(join(archive, `${kind}${version}.pem`), contents[kind], {
        mode: kind === 'privkey' ? 0o600 : 0o644,
      });
    }
    for (const kind of KINDS) {
      await switchLink(live, `${kind}.pem`, `../../archive/${lineage}/${kind}${version}.pem`);
    }
    await fsyncDirectory(live);
    return { version };
  }

  async list(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(join(this.configDir, 'live'), { withFileTypes: true });
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) return [];
      throw err;
    }
    // certbot keeps a README next to the lineages; anything whose name we would refuse to read is not one.
    return entries
      .filter((entry) => entry.isDirectory() && isLineageName(entry.name))
      .map((entry) => entry.name)
      .sort();
  }
}

async function readOnce(lineage: string, live: string): Promise<Attempt> {
  const fullchainPath = join(live, 'fullchain.pem');
  const keyPath = join(live, 'privkey.pem');
  let fullchainPem: string;
  let keyPem: string;
  try {
    // Both at once: the closer together the two opens, the less likely a link switch falls between them.
    [fullchainPem, keyPem] = await Promise.all([readFile(fullchainPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT') && !(await exists(live))) return { absent: true };
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

async function highestVersion(archive: string): Promise<number> {
  let highest = 0;
  for (const name of await readdir(archive)) {
    const version = ARCHIVE_FILE.exec(name)?.[1];
    if (version !== undefined) highest = Math.max(highest, Number(version));
  }
  return highest;
}

/** Replaces `dir/name` with a symlink to `target` in one rename, so the link is never missing. */
async function switchLink(dir: string, name: string, target: string): Promise<void> {
  // A fixed temporary name: the caller's lock excludes other writers, and a crash leaves one stale link to replace.
  const temporary = join(dir, `.${name}.new`);
  await rm(temporary, { force: true });
  await symlink(target, temporary);
  await rename(temporary, join(dir, name));
}

/** False only when `path` is certainly absent: anything else is reported as a problem with the lineage. */
async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    return !isErrnoCode(err, 'ENOENT');
  }
}

function withFinalNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
