// The ACME settings as loadConfig validates them (flags, variables, defaults).
import { describe, expect, it } from 'vitest';
import { LETS_ENCRYPT_PRODUCTION, loadConfig } from '../../src/config.js';

describe('ACME settings', () => {
  it("defaults to Let's Encrypt production, ECDSA P-256 and HTTP-01, with nothing else set", () => {
    const config = loadConfig({}, {});
    expect(config).toMatchObject({ acmeDirectory: LETS_ENCRYPT_PRODUCTION, acmeKeyType: 'ecdsa-p256', acmeChallenge: 'http-01' });
    expect([config.acmeEmail, config.acmeCaCerts, config.acmeProfile, config.acmeEabKid, config.acmeEabHmacKey]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('reads every ACME setting from its variable, and flags win', () => {
    const env = {
      PROXIMATION_ACME_DIRECTORY: 'https://127.0.0.1:14000/dir',
      PROXIMATION_ACME_EMAIL: 'ops@example.com',
      PROXIMATION_ACME_CA_CERTS: '/etc/pebble/ca.pem',
      PROXIMATION_ACME_PROFILE: 'shortlived',
      PROXIMATION_ACME_EAB_KID: 'kid-1',
      PROXIMATION_ACME_EAB_HMAC_KEY: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV',
      PROXIMATION_ACME_KEY_TYPE: 'rsa-3072',
      PROXIMATION_ACME_CHALLENGE: 'tls-alpn-01',
    };
    expect(loadConfig({ 'acme-key-type': 'ecdsa-p384' }, env)).toMatchObject({
      acmeDirectory: 'https://127.0.0.1:14000/dir',
      acmeEmail: 'ops@example.com',
      acmeCaCerts: '/etc/pebble/ca.pem',
      acmeProfile: 'shortlived',
      acmeEabKid: 'kid-1',
      acmeEabHmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV',
      acmeKeyType: 'ecdsa-p384',
      acmeChallenge: 'tls-alpn-01',
    });
  });

  it('refuses values that cannot work, naming the variable and what is accepted', () => {
    const refused = (env: Record<string, string>, message: string) => expect(() => loadConfig({}, env)).toThrow(message);
    refused({ PROXIMATION_ACME_DIRECTORY: 'http://ca.test/dir' }, 'PROXIMATION_ACME_DIRECTORY="http://ca.test/dir" is not valid: expected an https URL');
    // certbot keys the account directory by the URL's path: it must not climb out of accounts/.
    refused({ PROXIMATION_ACME_DIRECTORY: 'https://ca.test/../../etc' }, 'PROXIMATION_ACME_DIRECTORY');
    refused({ PROXIMATION_ACME_DIRECTORY: 'https://user:pw@ca.test/dir' }, 'PROXIMATION_ACME_DIRECTORY');
    refused({ PROXIMATION_ACME_EMAIL: 'not-an-address' }, 'PROXIMATION_ACME_EMAIL="not-an-address" is not valid');
    refused({ PROXIMATION_ACME_KEY_TYPE: 'ed25519' }, 'one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096');
    refused({ PROXIMATION_ACME_CHALLENGE: 'dns-02' }, 'one of http-01, tls-alpn-01, dns-01');
    refused({ PROXIMATION_ISSUER: 'acme', PROXIMATION_ACME_CHALLENGE: 'dns-01' }, 'PROXIMATION_ACME_CHALLENGE=dns-01 needs PROXIMATION_DNS_PROVIDER');
    refused({ PROXIMATION_DNS_PROVIDER: 'rfc2136' }, 'needs PROXIMATION_DNS_RFC2136_CREDENTIALS');
    refused({ PROXIMATION_DNS_PROVIDER: 'hook', PROXIMATION_DNS_HOOK_AUTH: 'true' }, 'needs both PROXIMATION_DNS_HOOK_AUTH and PROXIMATION_DNS_HOOK_CLEANUP');
    refused({ PROXIMATION_DNS_RESOLVERS: 'ns1.example.com' }, 'IP addresses with optional ports');
    refused({ PROXIMATION_ACME_EAB_HMAC_KEY: 'has spaces' }, 'base64url');
    refused({ PROXIMATION_ACME_EAB_KID: 'kid-1' }, 'set both or neither');
  });
});
