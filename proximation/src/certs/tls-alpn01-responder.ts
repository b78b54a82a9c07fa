/**
 * Answers TLS-ALPN-01 challenges (RFC 8737) from the shared challenge store, whichever instance placed
 * them: for a connection that asked for ALPN `acme-tls/1`, `contextFor(servername)` gives the TLS
 * context with the self-signed validation certificate for that name, or undefined when no challenge is
 * pending for it (the handshake then fails, as the RFC wants).
 *
 * The certificate: a fresh ECDSA P-256 key, subjectAltName = exactly the one dNSName, and the critical
 * id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding the DER OCTET STRING of
 * SHA-256(key authorization). The store is read on each validation connection (they are few, and
 * reading revalidates NFS's cache); the context is built once per key authorization and reused while
 * the CA's vantage points connect. At most MAX_CACHED contexts are kept. A store that cannot be read is
 * logged and answered as "no challenge".
 */
import { createHash, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { errorMessage } from '@proximation/shared';
import type { Logger } from '../logger.js';
import type { ChallengeStore } from './challenge-store.js';

x509.cryptoProvider.set(webcrypto);

const ACME_IDENTIFIER_OID = '1.3.6.1.5.5.7.1.31';
const MAX_CACHED = 64;
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const HOUR_MS = 3_600_000;

export class TlsAlpn01Responder {
  private readonly cache = new Map<string, { keyAuthorization: string; context: Promise<tls.SecureContext> }>();

  constructor(
    private readonly store: ChallengeStore,
    private readonly log: Logger,
  ) {}

  async contextFor(servername: string): Promise<tls.SecureContext | undefined> {
    const name = servername.toLowerCase();
    let keyAuthorization: string | undefined;
    try {
      keyAuthorization = await this.store.get('tls-alpn-01', name);
    } catch (err) {
      this.log.error({ name, err: errorMessage(err) }, 'cannot read the TLS-ALPN-01 challenge store');
      return undefined;
    }
    if (keyAuthorization === undefined) {
      this.cache.delete(name);
      return undefined;
    }
    this.log.info({ name }, 'answering a TLS-ALPN-01 challenge');
    const cached = this.cache.get(name);
    if (cached?.keyAuthorization === keyAuthorization) return cached.context;
    const context = createTlsAlpn01Certificate(name, keyAuthorization).then((pair) =>
      tls.createSecureContext({ cert: pair.certPem, key: pair.keyPem }),
    );
    this.cache.delete(name);
    this.cache.set(name, { keyAuthorization, context });
    if (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return context;
  }
}

/** The RFC 8737 validation certificate for `name` and key pair, in PEM. */
async function createTlsAlpn01Certificate(name: string, keyAuthorization: string): Promise<{ certPem: string; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const digest = createHash('sha256').update(keyAuthorization).digest();
  // DER OCTET STRING of the 32-byte digest: tag 0x04, length 0x20.
  const acmeIdentifier = Buffer.concat([Buffer.from([0x04, digest.length]), digest]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    // The name is in the SAN; a fixed CN keeps names longer than a CN allows (64) working.
    name: [{ CN: ['proximation acme-tls/1'] }],
    keys,
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + 24 * HOUR_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }]),
      new x509.Extension(ACME_IDENTIFIER_OID, true, acmeIdentifier),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}
