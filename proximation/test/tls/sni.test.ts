import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { LocalCa } from '../../src/certs/local-ca.js';
import { SniContexts } from '../../src/tls/sni.js';
import { managed, table, tempDir } from '../support/fixtures.js';
import { startListener } from './helpers.js';

const resources = managed();

it('serves every name with a context cache smaller than the number of names, and a replaced certificate at once', async () => {
  const dir = await tempDir();
  resources.defer(() => dir.close());
  const ca = await LocalCa.open(path.join(dir.path, 'ca'));
  const names = ['a.test', 'b.test', 'c.test'];
  const sni = new SniContexts(async () => undefined, 2);
  const issue = async (name: string): Promise<string> => {
    const files = await ca.issue([name]);
    sni.set(name, { fullchainPem: files.certPem + files.chainPem, keyPem: files.keyPem });
    return new X509Certificate(files.certPem).serialNumber;
  };
  const serials = new Map<string, string>();
  for (const name of names) serials.set(name, await issue(name));
  const server = tls.createServer({ SNICallback: sni.SNICallback }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  resources.defer(() => new Promise((resolve) => server.close(() => resolve())));
  const servedSerial = (name: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: name, ca: ca.rootPem }, () => {
        resolve(socket.getPeerX509Certificate()!.serialNumber);
        socket.destroy();
      });
      socket.on('error', reject);
    });
  // Twice round, so names evicted from the two-entry cache are rebuilt.
  for (const name of [...names, ...names]) expect(await servedSerial(name)).toBe(serials.get(name));
  serials.set('a.test', await issue('a.test'));
  expect(await servedSerial('a.test')).toBe(serials.get('a.test'));
  await expect(servedSerial('unknown.test')).rejects.toThrow();
});

/** What `openssl s_client` prints about the server's answer to a ClientHello for `name` (it exits 1 on an alert). */
function openssl(port: number, name: string, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, ...args], (_err, stdout, stderr) => resolve(stdout + stderr));
    child.stdin?.end();
  });
}

it('refuses a name it does not serve with an unrecognized_name alert (112), on TLS 1.3 and 1.2, and over the TLS-ALPN-01 path', async () => {
  const upstream = await resources.upstream((_req, res) => res.end('ok'));
  const p = await resources.proxy(table([{ name: 'app', hosts: ['app.test'], upstreams: [upstream.origin] }]));
  const port = p.server.https.port;
  for (const version of ['-tls1_3', '-tls1_2']) {
    expect(await openssl(port, 'stranger.test', version), version).toContain('SSL alert number 112');
    expect(await openssl(port, 'app.test', version, '-CAfile', path.join(p.config.letsencryptDir, 'proximation', 'local-ca', 'root.pem')), version).toContain('Verify return code: 0 (ok)');
  }
  // With TLS-ALPN-01 on, every ClientHello is looked at first: ordinary and challenge handshakes alike.
  const listener = await startListener((name, cb) => cb(new Error(`not ${name}`)), resources.defer, { acmeTlsAlpn: async () => undefined });
  expect(await openssl(listener.port, 'pending.test', '-alpn', 'acme-tls/1')).toContain('SSL alert number 112');
  // A callback that fails for another reason is an internal_error (80), not a silent close.
  expect(await openssl(listener.port, 'pending.test', '-alpn', 'h2')).toContain('SSL alert number 80');
});
