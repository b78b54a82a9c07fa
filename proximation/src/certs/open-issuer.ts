/**
 * The configured CertificateIssuer (PROXIMATION_ISSUER): the local CA or an ACME CA with its settings.
 * Shared by `serve` and `renew`, so both order from the same CA with the same account and key type.
 *
 * Each issuer's module is loaded only when it is the one configured: the ACME client and its X.509
 * stack cost a local-CA process memory for nothing, and a local CA is never wanted on an ACME volume.
 *
 * Throws what openLocalIssuer and openAcmeIssuer throw, and ERR_ISSUER_MISMATCH when the local CA is
 * configured on a storage that holds an ACME account: the local issuer replaces every certificate it
 * did not issue, so starting it there by mistake (a task without PROXIMATION_ISSUER=acme) would swap
 * every publicly trusted certificate for a local one.
 */
import { ProximationError, type Storage } from '@proximation/shared';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { CertStore } from './cert-store.js';
import type { CertificateIssuer } from './certificate-manager.js';
import type { ChallengeStore } from './challenge-store.js';
import type { DnsProviderSpec } from './dns01/providers.js';

export async function openIssuer(
  config: Config,
  parts: { store: CertStore; challenges: ChallengeStore; log: Logger },
): Promise<CertificateIssuer> {
  if (config.issuer === 'local') {
    await refuseAcmeStorage(parts.store.storage);
    const { openLocalIssuer } = await import('./local-issuer.js');
    return openLocalIssuer(config.letsencryptDir, parts.store.storage);
  }
  const { openAcmeIssuer } = await import('./acme-issuer.js');
  return openAcmeIssuer({
    ...parts,
    settings: {
      directoryUrl: config.acmeDirectory,
      email: config.acmeEmail,
      caCertsPath: config.acmeCaCerts,
      profile: config.acmeProfile,
      eab: config.acmeEabKid === undefined || config.acmeEabHmacKey === undefined ? undefined : { kid: config.acmeEabKid, hmacKey: config.acmeEabHmacKey },
      keyType: config.acmeKeyType,
      challenge: config.acmeChallenge,
      dns: {
        provider: dnsProviderSpec(config),
        hookTimeoutMs: config.dnsHookTimeoutMs,
        propagation: { resolvers: config.dnsResolvers, authoritativePort: config.dnsAuthoritativePort, timeoutMs: config.dnsPropagationTimeoutMs },
      },
    },
  });
}

/** The configured DNS provider as a spec (config.ts checked that its settings are there). */
function dnsProviderSpec(config: Config): DnsProviderSpec | undefined {
  switch (config.dnsProvider) {
    case 'rfc2136':
      return { type: 'rfc2136', credentialsFile: config.dnsRfc2136Credentials! };
    case 'route53':
      return { type: 'route53' };
    case 'hook':
      return { type: 'hook', authHook: config.dnsHookAuth!, cleanupHook: config.dnsHookCleanup! };
    case undefined:
      return undefined;
  }
}

/** certbot and the ACME issuer both keep their accounts under accounts/; the local CA never writes there. */
async function refuseAcmeStorage(storage: Storage): Promise<void> {
  const servers = [...new Set((await storage.list('accounts')).map((key) => key.split('/')[1]!))];
  if (servers.length === 0) return;
  throw new ProximationError(
    'ERR_ISSUER_MISMATCH',
    `${storage.location} holds ACME accounts (accounts/: ${servers.join(', ')}), but the issuer is the local CA, ` +
      'which would replace their certificates with untrusted ones. Set PROXIMATION_ISSUER=acme (with ' +
      'PROXIMATION_ACME_DIRECTORY for a CA other than Let\'s Encrypt), or point PROXIMATION_STORAGE ' +
      '(or PROXIMATION_LETSENCRYPT_DIR) at a storage of its own for the local CA.',
  );
}
