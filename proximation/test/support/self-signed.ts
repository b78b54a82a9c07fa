/**
 * A self-signed ECDSA certificate for 127.0.0.1 (IP subjectAltName), made by openssl, for TLS upstreams
 * in tests. Its files are read and removed at once; throws if openssl fails.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'proximation-cert-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    return { key: await fs.readFile(key, 'utf8'), cert: await fs.readFile(cert, 'utf8') };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
