import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { LocalCa } from '../../src/certs/local-ca.js';
import { SniContexts } from '../../src/tls/sni.js';
import { managed, tempDir } from '../support/fixtures.js';

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
