import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { ariCertId, ariRenewalTime, parseRenewalInfo } from '../../src/certs/ari.js';

x509.cryptoProvider.set(webcrypto);

async function certificate(serialNumber: string, keyId: string | undefined): Promise<string> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: 'CN=ari.test',
    keys,
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2025-04-01T00:00:00Z'),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: keyId === undefined ? [] : [new x509.AuthorityKeyIdentifierExtension(keyId)],
  });
  return cert.toString('pem');
}

describe('ARI (RFC 9773)', () => {
  it("names a certificate as the RFC's example does: AKI key id and serial, leading zero kept", async () => {
    const pem = await certificate('0087654321', '69885b6b87464041e1b37b847ba0ae2cde01c8d4');
    expect(ariCertId(pem)).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('refuses a certificate without an authority key identifier', async () => {
    expect(() => ariCertId(pem0)).toThrow(/no authority key identifier/);
  });

  it('picks a uniform time inside the window, its start when the window is inverted', () => {
    const window = { start: new Date('2025-03-01T00:00:00Z'), end: new Date('2025-03-03T00:00:00Z') };
    expect(ariRenewalTime(window, 0)).toEqual(window.start);
    expect(ariRenewalTime(window, 0.5)).toEqual(new Date('2025-03-02T00:00:00Z'));
    expect(ariRenewalTime({ start: window.end, end: window.start }, 0.5)).toEqual(window.end);
  });

  it("validates the CA's answer", () => {
    expect(parseRenewalInfo({ suggestedWindow: { start: '2025-03-01T00:00:00Z', end: '2025-03-02T00:00:00Z' } }, 'u')).toEqual({
      start: new Date('2025-03-01T00:00:00Z'),
      end: new Date('2025-03-02T00:00:00Z'),
    });
    expect(() => parseRenewalInfo({ suggestedWindow: { start: 'soon' } }, 'https://ca/ri/x')).toThrow(/https:\/\/ca\/ri\/x has no valid suggestedWindow/);
  });
});

const pem0 = await certificate('01', undefined);
