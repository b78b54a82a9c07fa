import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { managed, table, tempDir, type Proxy } from '../support/fixtures.js';
import { handshake, refusal, startListener } from './helpers.js';

const resources = managed();
// Node's client offers TLS 1.0/1.1 only at OpenSSL security level 0: then a refusal is the server's.
const OLD_CLIENT = { ciphers: 'DEFAULT@SECLEVEL=0' };
// The alert the server sends when no offered suite is acceptable (OpenSSL 3.5 renamed the code's prefix).
const HANDSHAKE_FAILURE = expect.stringMatching(/^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_HANDSHAKE_FAILURE$/);

async function proxy(): Promise<Proxy> {
  const upstream = await resources.upstream((_req, res) => res.end('ok'));
  return resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
}

describe('TLS baseline', () => {
  it('refuses TLS 1.0 and 1.1 with a protocol_version alert, and speaks 1.2 and 1.3 to the same client', async () => {
    const p = await proxy();
    const client = { servername: 'app.test', ca: p.ca, ...OLD_CLIENT };
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      expect(await refusal(p.server.https.port, { ...client, minVersion: version, maxVersion: version })).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    }
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      expect((await handshake(p.server.https.port, { ...client, minVersion: version, maxVersion: version })).protocol).toBe(version);
    }
  });

  it('refuses CBC and RSA key transport suites on TLS 1.2, accepts ECDHE with AEAD, and picks by its own order', async () => {
    const p = await proxy();
    const client = { servername: 'app.test', ca: p.ca, maxVersion: 'TLSv1.2' as const };
    for (const ciphers of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'AES128-GCM-SHA256', 'AES128-SHA']) {
      expect({ ciphers, refused: await refusal(p.server.https.port, { ...client, ciphers }) }).toEqual({ ciphers, refused: HANDSHAKE_FAILURE });
    }
    for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      expect((await handshake(p.server.https.port, { ...client, ciphers: cipher })).cipher).toBe(cipher);
    }
    // The client prefers ChaCha20; the server's order puts AES-128-GCM first, on TLS 1.2 and 1.3.
    const preferring = await handshake(p.server.https.port, { ...client, ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(preferring.cipher).toBe('ECDHE-ECDSA-AES128-GCM-SHA256');
    const tls13 = await handshake(p.server.https.port, { servername: 'app.test', ca: p.ca, minVersion: 'TLSv1.3', ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256' });
    expect(tls13).toMatchObject({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' });
  });

  it('with an RSA certificate, refuses RSA key transport and CBC and accepts ECDHE-RSA with AEAD', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const [keyFile, certFile] = [path.join(dir.path, 'key.pem'), path.join(dir.path, 'cert.pem')];
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-subj', '/CN=rsa.test', '-addext', 'subjectAltName=DNS:rsa.test', '-days', '1',
    ]);
    const cert = await readFile(certFile, 'utf8');
    const context = tls.createSecureContext({ cert, key: await readFile(keyFile, 'utf8') });
    const { port } = await startListener((_name, cb) => cb(null, context), resources.defer);
    const client = { servername: 'rsa.test', ca: cert, maxVersion: 'TLSv1.2' as const };
    for (const ciphers of ['AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-SHA', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384']) {
      expect({ ciphers, refused: await refusal(port, { ...client, ciphers }) }).toEqual({ ciphers, refused: HANDSHAKE_FAILURE });
    }
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      expect((await handshake(port, { ...client, ciphers: cipher })).cipher).toBe(cipher);
    }
  });
});
