/**
 * The configured CertificateIssuer (PROXIMATION_ISSUER): the local CA or an ACME CA with its settings.
 * Shared by `serve` and `renew`, so both order from the same CA with the same account and key type.
 * Throws what openLocalIssuer and openAcmeIssuer throw.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { openAcmeIssuer } from './acme-issuer.js';
import type { CertStore } from './cert-store.js';
import type { CertificateIssuer } from './certificate-manager.js';
import type { ChallengeStore } from './challenge-store.js';
import { openLocalIssuer } from './local-issuer.js';

export async function openIssuer(
  config: Config,
  parts: { store: CertStore; challenges: ChallengeStore; locksDir: string; log: Logger },
): Promise<CertificateIssuer> {
  if (config.issuer === 'local') return openLocalIssuer(config.letsencryptDir);
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
    },
  });
}

export function locksDirOf(letsencryptDir: string): string {
  return path.join(letsencryptDir, 'proximation', 'locks');
}
