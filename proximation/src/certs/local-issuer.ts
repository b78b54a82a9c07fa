/**
 * The local CA as a CertificateIssuer: what `PROXIMATION_ISSUER=local` (the embedded default) uses.
 * The CA lives at `proximation/local-ca/` in the shared storage (on files under the letsencrypt
 * directory), shared by every instance on the volume or the Redis.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { FileStorage, type Storage } from '@proximation/shared';
import type { LoadedCertificate } from './cert-store.js';
import type { CertificateIssuer } from './certificate-manager.js';
import { LocalCa } from './local-ca.js';

export function localCaDir(letsencryptDir: string): string {
  return path.join(letsencryptDir, 'proximation', 'local-ca');
}

/** The file holding the local CA's root (PEM); it exists once the CA is complete (see local-ca.ts). */
export function localCaRootPath(letsencryptDir: string): string {
  return path.join(localCaDir(letsencryptDir), 'root.pem');
}

export async function openLocalIssuer(letsencryptDir: string, storage: Storage = new FileStorage(letsencryptDir)): Promise<CertificateIssuer & { ca: LocalCa }> {
  const where = storage instanceof FileStorage ? localCaDir(letsencryptDir) : `proximation/local-ca in ${storage.location}`;
  const ca = await LocalCa.open(where, { storage, prefix: 'proximation/local-ca/' });
  const root = new X509Certificate(ca.rootPem);
  return {
    ca,
    name: 'local',
    issued: async (cert: LoadedCertificate) => new X509Certificate(cert.certPem).verify(root.publicKey),
    issue: (names: string[]) => ca.issue(names),
  };
}
