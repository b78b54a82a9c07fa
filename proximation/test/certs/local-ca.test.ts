import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { LocalCa } from '../../src/certs/local-ca.js';
import { distModule, finished, startNode, withTempDir } from './helpers.js';

const DAY_MS = 86_400_000;

describe('LocalCa', () => {
  it('creates an ECDSA P-256 root once and reopens the same one', () =>
    withTempDir(async (dir) => {
      const caDir = join(dir, 'local-ca');
      const first = await LocalCa.open(caDir);
      const again = await LocalCa.open(caDir);
      expect(again.rootPem).toBe(first.rootPem);
      expect(await readFile(join(caDir, 'root.pem'), 'utf8')).toBe(first.rootPem);
      expect((await stat(join(caDir, 'root.pem'))).mode & 0o777).toBe(0o644);
      expect((await stat(join(caDir, 'root-key.pem'))).mode & 0o777).toBe(0o600);
      expect((await stat(caDir)).mode & 0o777).toBe(0o700);
      const keyPem = await readFile(join(caDir, 'root-key.pem'), 'utf8');
      expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

      const root = new X509Certificate(first.rootPem);
      expect(root.ca).toBe(true);
      expect(root.subject).toMatch(/^CN=proximation local CA [0-9a-f]{8}$/);
      expect(root.issuer).toBe(root.subject);
      expect(root.verify(root.publicKey)).toBe(true);
      expect(root.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
      expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      const lifetimeDays = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / DAY_MS;
      expect(Math.round(lifetimeDays)).toBe(3650);

      const parsed = new x509.X509Certificate(first.rootPem);
      const constraints = parsed.getExtension(x509.BasicConstraintsExtension);
      expect(constraints?.ca).toBe(true);
      expect(constraints?.critical).toBe(true);
      const usages = parsed.getExtension(x509.KeyUsagesExtension);
      expect(usages?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
      expect(usages?.critical).toBe(true);
      expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    }));

  it('ends with one root when several processes create it at the same moment', () =>
    withTempDir(async (dir) => {
      const caDir = join(dir, 'shared-ca');
      // Each child loads the module, says "ready", and opens the CA only when the parent releases all at once.
      const script = `
        import { LocalCa } from ${JSON.stringify(distModule('certs/local-ca.js'))};
        process.stdout.write('ready\\n');
        process.stdin.once('data', async () => {
          const ca = await LocalCa.open(process.env.CA_DIR);
          process.stdout.write(ca.rootPem);
          process.stdin.destroy();
        });`;
      const children = [1, 2, 3].map(() => startNode(script, { CA_DIR: caDir }));
      const outputs = children.map(finished);
      // Racing the exits surfaces a child that fails before it gets ready.
      await Promise.race([Promise.all(children.map((child) => once(child.stdout, 'data'))), Promise.all(outputs)]);
      for (const child of children) child.stdin.write('go\n');
      const roots = (await Promise.all(outputs)).map((out) => out.replace(/^ready\n/, ''));
      const onDisk = await readFile(join(caDir, 'root.pem'), 'utf8');
      expect(roots).toEqual([onDisk, onDisk, onDisk]);
      expect((await LocalCa.open(caDir)).rootPem).toBe(onDisk);
    }));

  it('refuses a directory whose root key is missing instead of replacing the root', () =>
    withTempDir(async (dir) => {
      const caDir = join(dir, 'broken');
      await LocalCa.open(caDir);
      await rm(join(caDir, 'root-key.pem'));
      await expect(LocalCa.open(caDir)).rejects.toMatchObject({
        code: 'ERR_LOCAL_CA_INVALID',
        message: expect.stringContaining('root-key.pem is missing'),
      });
    }));

  it('issues a server certificate that verifies against the root', () =>
    withTempDir(async (dir) => {
      const ca = await LocalCa.open(join(dir, 'ca'));
      const before = Date.now();
      const files = await ca.issue(['example.test', 'www.example.test']);
      const root = new X509Certificate(ca.rootPem);
      const leaf = new X509Certificate(files.certPem);

      expect(files.chainPem).toBe(ca.rootPem);
      expect(files.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(leaf.verify(root.publicKey)).toBe(true);
      expect(leaf.checkIssued(root)).toBe(true);
      expect(leaf.checkPrivateKey(createPrivateKey(files.keyPem))).toBe(true);
      expect(leaf.checkHost('www.example.test')).toBe('www.example.test');
      expect(leaf.checkHost('other.test')).toBeUndefined();
      expect(leaf.ca).toBe(false);
      expect(leaf.subjectAltName).toBe('DNS:example.test, DNS:www.example.test');
      expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(leaf.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
      expect(Date.parse(leaf.validFrom)).toBeLessThanOrEqual(before - 3_599_000);
      expect(Math.round((Date.parse(leaf.validTo) - before) / DAY_MS)).toBe(90);

      const parsed = new x509.X509Certificate(files.certPem);
      expect(parsed.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.serverAuth]);
      const usages = parsed.getExtension(x509.KeyUsagesExtension);
      expect(usages?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
      expect(usages?.critical).toBe(true);
      expect(parsed.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
      const rootKeyId = new x509.X509Certificate(ca.rootPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(rootKeyId);

      const short = new X509Certificate((await ca.issue(['a.test'], { validityDays: 2 })).certPem);
      expect(Math.round((Date.parse(short.validTo) - before) / DAY_MS)).toBe(2);
      expect(short.serialNumber).not.toBe(leaf.serialNumber);
    }));

  it('rejects a request without names or with a non-positive validity', () =>
    withTempDir(async (dir) => {
      const ca = await LocalCa.open(join(dir, 'ca'));
      await expect(ca.issue([])).rejects.toMatchObject({ code: 'ERR_LOCAL_CA_REQUEST_INVALID' });
      await expect(ca.issue(['a.test'], { validityDays: 0 })).rejects.toMatchObject({
        code: 'ERR_LOCAL_CA_REQUEST_INVALID',
      });
    }));

  it('is accepted by a TLS client that trusts the root, and only for the names issued', () =>
    withTempDir(async (dir) => {
      const ca = await LocalCa.open(join(dir, 'ca'));
      const files = await ca.issue(['example.test']);
      const server = tls.createServer({ cert: files.certPem + files.chainPem, key: files.keyPem }, (socket) =>
        socket.end(),
      );
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as { port: number };
      const connect = (servername: string) =>
        new Promise<boolean>((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.rootPem }, () => {
            resolve(socket.authorized);
            socket.end();
          });
          socket.on('error', reject);
        });
      try {
        expect(await connect('example.test')).toBe(true);
        await expect(connect('other.test')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      } finally {
        server.close();
      }
    }));

  it('passes openssl verify in strict mode for the sslserver purpose', () =>
    withTempDir(async (dir) => {
      const ca = await LocalCa.open(join(dir, 'ca'));
      const files = await ca.issue(['example.test']);
      await writeFile(join(dir, 'leaf.pem'), files.certPem);
      const { stdout } = await promisify(execFile)('openssl', [
        'verify',
        '-x509_strict',
        '-purpose',
        'sslserver',
        '-CAfile',
        join(dir, 'ca', 'root.pem'),
        join(dir, 'leaf.pem'),
      ]);
      expect(stdout.trim()).toBe(`${join(dir, 'leaf.pem')}: OK`);
    }));
});
