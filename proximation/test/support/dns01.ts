/**
 * The DNS-01 test set-up shared by the issuer tests: an AcmeIssuer ordering from `pebble` into `le` over
 * dns-01, its propagation check asking `bind` (as resolver and as the authoritative server), and a
 * CertificateManager over it (not started: tests call `renew`). `settings` and `dns` override parts.
 * `useBindAndPebble` starts both for a test file (Pebble resolving through BIND, no reuse of valid
 * authorizations, so every order really validates and update counts are exact) and stops them after.
 */
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { openAcmeIssuer, type AcmeIssuerSettings, type DnsSettings } from '../../src/certs/acme-issuer.js';
import { CertStore } from '../../src/certs/cert-store.js';
import { CertificateManager } from '../../src/certs/certificate-manager.js';
import { ChallengeStore } from '../../src/certs/challenge-store.js';
import { startBind, type Bind } from './bind.js';
import { PEBBLE_WAIT_MS, startPebble, type Pebble } from './pebble.js';

const silent = pino({ level: 'silent' });

/** DNS settings that find everything at `bind`; the provider is BIND's own key over RFC 2136 unless given. */
export function bindDnsSettings(bind: Bind, overrides: { provider?: DnsSettings['provider']; hookTimeoutMs?: number; propagation?: Partial<DnsSettings['propagation']> } = {}): DnsSettings {
  return {
    provider: 'provider' in overrides ? overrides.provider : { type: 'rfc2136', credentialsFile: bind.credentialsFile },
    hookTimeoutMs: overrides.hookTimeoutMs ?? 20_000,
    propagation: { resolvers: [{ host: '127.0.0.1', port: bind.port }], authoritativePort: bind.port, timeoutMs: 10_000, ...overrides.propagation },
  };
}

export async function dns01Issuer(pebble: Pebble, bind: Bind, le: string, settings: Partial<AcmeIssuerSettings> = {}) {
  const store = new CertStore(le);
  const issuer = await openAcmeIssuer({
    store,
    challenges: new ChallengeStore(le),
    log: silent,
    settings: {
      directoryUrl: pebble.directoryUrl,
      email: undefined,
      caCertsPath: pebble.caCertsPath,
      profile: undefined,
      eab: undefined,
      keyType: 'ecdsa-p256',
      challenge: 'dns-01',
      dns: bindDnsSettings(bind),
      ...settings,
    },
  });
  const manager = new CertificateManager({ store, issuer, pollMs: 60_000, log: silent, onCertificate: () => {}, onRemoved: () => {} });
  return { store, issuer, manager };
}

/** The settings of an in-process proxy ordering from `pebble` with BIND's key over RFC 2136 for dns-01. */
export function dns01ProxySettings(pebble: Pebble, bind: Bind, le: string): Record<string, string> {
  return {
    letsencryptDir: le,
    issuer: 'acme',
    acmeDirectory: pebble.directoryUrl,
    acmeCaCerts: pebble.caCertsPath,
    dnsProvider: 'rfc2136',
    dnsRfc2136Credentials: bind.credentialsFile,
    dnsResolvers: `127.0.0.1:${bind.port}`,
    dnsAuthoritativePort: String(bind.port),
  };
}

export function useBindAndPebble(): { bind: Bind; pebble: Pebble } {
  const started = {} as { bind: Bind; pebble: Pebble };
  beforeAll(async () => {
    started.bind = await startBind();
    // No nonces refused (PEBBLE_WFE_NONCEREJECT=0), as in certbot-interop.test.ts: these files run the real
    // certbot, which retries a badNonce only once, so Pebble's 5% refusals failed some full runs. Our own
    // client's badNonce retries stay proven in pebble.test.ts, whose Pebble keeps refusing them.
    started.pebble = await startPebble({ dnsServer: `127.0.0.1:${started.bind.port}`, env: { PEBBLE_AUTHZREUSE: '0', PEBBLE_WFE_NONCEREJECT: '0' } });
  }, PEBBLE_WAIT_MS);
  afterAll(async () => {
    await started.pebble?.close();
    await started.bind?.close();
  });
  return started;
}
