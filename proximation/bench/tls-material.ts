/**
 * Makes the self-signed ECDSA P-256 certificate for `localhost` that nginx, Caddy and the http-proxy
 * reference present (proximation issues its own from its local CA). The key file is mode 0600 in a 0700
 * directory. Throws what `ChildSupervisor.run` throws when openssl fails.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildSupervisor } from './children.js';

export interface TlsMaterial {
  readonly certPath: string;
  readonly keyPath: string;
  /** The certificate itself, which clients trust as its own root. */
  readonly certPem: string;
}

export async function makeLocalhostCertificate(children: ChildSupervisor, dir: string): Promise<TlsMaterial> {
  await mkdir(dir, { mode: 0o700, recursive: true });
  const certPath = join(dir, 'localhost.crt');
  const keyPath = join(dir, 'localhost.key');
  await children.run(
    {
      name: 'openssl',
      command: 'openssl',
      args: [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost',
      ],
    },
    10_000,
  );
  return { certPath, keyPath, certPem: await readFile(certPath, 'utf8') };
}
