/**
 * The local CA as a CertificateIssuer: what `PROXIMATION_ISSUER=local` (the embedded default) uses.
 * The CA lives under `<letsencrypt dir>/proximation/local-ca`, shared by every instance on the volume.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
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

export async function openLocalIssuer(letsencryptDir: string): Promise<CertificateIssuer & { ca: LocalCa }> {
  const ca = await LocalCa.open(localCaDir(letsencryptDir));
  const root = new X509Certificate(ca.rootPem);
  return {
    ca,
    name: 'local',
    issued: async (cert: LoadedCertificate) => new X509Certificate(cert.certPem).verify(root.publicKey),
    issue: (names: string[]) => ca.issue(names),
  };
}
