/**
 * ACME Renewal Information (RFC 9773), the pure parts: a certificate's ARI identifier and the moment to
 * renew inside the CA's suggested window.
 *
 * - `ariCertId`: base64url(keyIdentifier of the Authority Key Identifier) "." base64url(the serial
 *   number's DER content octets, leading zero included), RFC 9773 section 4.1. Throws ProximationError
 *   ERR_ARI_CERT_ID when the certificate has no AKI keyIdentifier (ARI cannot name it).
 * - `ariRenewalTime`: a uniform random time inside [start, end) (section 4.2), or `start` when the window
 *   is empty or inverted; a fleet spreads its renewals over the window.
 * - `parseRenewalInfo`: validates the CA's JSON at the edge; throws ERR_ARI_RESPONSE_INVALID naming the URL.
 */
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ProximationError } from '@proximation/shared';

x509.cryptoProvider.set(webcrypto);

export interface RenewalWindow {
  start: Date;
  end: Date;
}

export function ariCertId(certPem: string): string {
  const cert = new x509.X509Certificate(certPem);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (aki?.keyId === undefined) {
    throw new ProximationError('ERR_ARI_CERT_ID', `the certificate ${cert.serialNumber} (${cert.subject}) has no authority key identifier; ARI cannot name it.`);
  }
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${Buffer.from(serialDerContent(cert.serialNumber), 'hex').toString('base64url')}`;
}

/** The DER INTEGER content of a positive serial: minimal bytes, with a 00 first when the top bit is set. */
function serialDerContent(hex: string): string {
  // Parsers print the value, some without the DER's leading zero: rebuild the octets from the value.
  let octets = BigInt(`0x${hex}`).toString(16);
  if (octets.length % 2 === 1) octets = `0${octets}`;
  return Number.parseInt(octets.slice(0, 2), 16) >= 0x80 ? `00${octets}` : octets;
}

export function ariRenewalTime(window: RenewalWindow, random = Math.random()): Date {
  const span = window.end.getTime() - window.start.getTime();
  return new Date(window.start.getTime() + Math.max(0, span) * random);
}

export function parseRenewalInfo(body: unknown, url: string): RenewalWindow {
  const window = (body as { suggestedWindow?: { start?: unknown; end?: unknown } } | undefined)?.suggestedWindow;
  const start = new Date(String(window?.start));
  const end = new Date(String(window?.end));
  if (typeof window?.start !== 'string' || typeof window.end !== 'string' || Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    throw new ProximationError('ERR_ARI_RESPONSE_INVALID', `the renewal information at ${url} has no valid suggestedWindow {start, end}: ${JSON.stringify(body)?.slice(0, 200)}`);
  }
  return { start, end };
}
