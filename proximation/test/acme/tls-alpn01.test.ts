// The HTTPS listener with a TLS-ALPN-01 responder: acme-tls/1 clients get the RFC 8737 certificate,
// everyone else the real one, over real sockets. The whole flow against a CA is in pebble.test.ts.
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChallengeStore } from '../../src/certs/challenge-store.js';
import { LocalCa } from '../../src/certs/local-ca.js';
import { TlsAlpn01Responder } from '../../src/certs/tls-alpn01-responder.js';
import { HttpsListener } from '../../src/listeners/https-listener.js';
import { createContext } from '../../src/tls/sni.js';
import { tempDir } from '../support/fixtures.js';

const KEY_AUTHORIZATION = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nysa-thumbprint';
const ACME_IDENTIFIER = '1.3.6.1.5.5.7.1.31';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

interface Setup {
  port: number;
  rootPem: string;
  challenges: ChallengeStore;
}

let setup: Setup;
beforeEach(async () => {
  const dir = await tempDir('proximation-tls-alpn-');
  cleanup.push(() => dir.close());
  const ca = await LocalCa.open(path.join(dir.path, 'ca'));
  const files = await ca.issue(['a.test']);
  const context = createContext({ fullchainPem: files.certPem + files.chainPem, keyPem: files.keyPem });
  const challenges = new ChallengeStore(dir.path);
  const responder = new TlsAlpn01Responder(challenges, pino({ level: 'silent' }));
  const listener = new HttpsListener({
    port: 0,
    host: '127.0.0.1',
    SNICallback: (name, cb) => (name === 'a.test' ? cb(null, context) : cb(new Error(`no certificate for ${name}`))),
    acmeTlsAlpn: (name) => responder.contextFor(name),
    onRequest: (req, res) => res.end(`hello ${req.httpVersion}`),
    onUpgrade: (_req, socket) => socket.destroy(),
    headersTimeoutMs: 5000,
    requestTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    maxHeaderSize: 16384,
    maxConnections: 100,
    handshakeTimeoutMs: 500,
  });
  const { port } = await listener.listen();
  cleanup.push(() => listener.drain(Date.now() + 1000));
  setup = { port, rootPem: ca.rootPem, challenges };
});

/** Completes a TLS handshake (through `port`) and reports what the server presented and negotiated. */
function connect(options: tls.ConnectionOptions & { port?: number }): Promise<{ alpn: string | false; cert: x509.X509Certificate; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: setup.port, ...options });
    socket.once('secureConnect', () => {
      const result = { alpn: socket.alpnProtocol ?? false, cert: new x509.X509Certificate(socket.getPeerX509Certificate()!.raw), authorized: socket.authorized };
      socket.destroy();
      resolve(result);
    });
    socket.once('error', reject);
  });
}

/** A TCP relay that forwards client bytes to the listener one at a time, so a ClientHello arrives in pieces. */
async function tricklingRelay(): Promise<number> {
  const relay = net.createServer((client) => {
    const upstream = net.connect(setup.port, '127.0.0.1');
    upstream.setNoDelay(true);
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      for (const byte of chunk) {
        queue = queue.then(() => new Promise((resolve) => upstream.write(Buffer.from([byte]), () => setImmediate(resolve))));
      }
    });
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => relay.close(() => resolve())));
  return (relay.address() as net.AddressInfo).port;
}

function checkChallengeCertificate(cert: x509.X509Certificate): void {
  expect(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([{ type: 'dns', value: 'a.test' }]);
  const extension = cert.getExtension(ACME_IDENTIFIER)!;
  expect(extension.critical).toBe(true);
  const digest = createHash('sha256').update(KEY_AUTHORIZATION).digest();
  expect(Buffer.from(extension.value)).toEqual(Buffer.concat([Buffer.from([0x04, 0x20]), digest]));
}

describe('TLS-ALPN-01 on the HTTPS listener', () => {
  it('presents the acme-tls/1 certificate to acme-tls/1 clients only, and the real one to everyone else', async () => {
    await setup.challenges.put('tls-alpn-01', 'a.test', KEY_AUTHORIZATION);
    const challenge = await connect({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false });
    expect(challenge.alpn).toBe('acme-tls/1');
    checkChallengeCertificate(challenge.cert);

    const normal = await connect({ servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'], ca: setup.rootPem });
    expect(normal).toMatchObject({ alpn: 'h2', authorized: true });
    expect(normal.cert.getExtension(ACME_IDENTIFIER)).toBeNull();

    // HTTP/2 and HTTP/1.1 still work through the peeked connections.
    const session = http2.connect(`https://127.0.0.1:${setup.port}`, { servername: 'a.test', ca: setup.rootPem });
    const body = await new Promise<string>((resolve, reject) => {
      let text = '';
      const stream = session.request({ ':path': '/' });
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
    });
    session.close();
    expect(body).toBe('hello 2.0');
    const h1 = tls.connect({ host: '127.0.0.1', port: setup.port, servername: 'a.test', ca: setup.rootPem, ALPNProtocols: ['http/1.1'] });
    h1.write('GET / HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n');
    const response = await new Promise<string>((resolve) => {
      let text = '';
      h1.on('data', (c: Buffer) => (text += c.toString()));
      h1.on('end', () => resolve(text));
    });
    expect(response).toMatch(/^HTTP\/1\.1 200 [\s\S]*hello 1\.1$/);
  });

  it('refuses acme-tls/1 for a name with no pending challenge, and after the challenge is removed', async () => {
    await expect(connect({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false })).rejects.toThrow();
    await setup.challenges.put('tls-alpn-01', 'a.test', KEY_AUTHORIZATION);
    await connect({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false });
    await setup.challenges.remove('tls-alpn-01', 'a.test');
    await expect(connect({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false })).rejects.toThrow();
  });

  it('routes correctly when the ClientHello arrives one byte at a time', async () => {
    await setup.challenges.put('tls-alpn-01', 'a.test', KEY_AUTHORIZATION);
    const port = await tricklingRelay();
    checkChallengeCertificate((await connect({ port, servername: 'a.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false })).cert);
    expect(await connect({ port, servername: 'a.test', ALPNProtocols: ['http/1.1'], ca: setup.rootPem })).toMatchObject({ alpn: 'http/1.1', authorized: true });
  });

  it('disconnects a client that sends no ClientHello within the handshake timeout', async () => {
    const socket = net.connect(setup.port, '127.0.0.1');
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
