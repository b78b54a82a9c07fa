// inspectClientHello against ClientHellos that Node's real TLS client sends, cut and reframed.
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { inspectClientHello } from '../../src/tls/client-hello.js';

/** The first TLS record a real client sends with these options (the server never answers). */
async function clientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const received = new Promise<Buffer>((resolve) => {
      server.once('connection', (socket) => {
        let bytes = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          bytes = Buffer.concat([bytes, chunk]);
          if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) {
            resolve(bytes.subarray(0, 5 + bytes.readUInt16BE(3)));
            socket.destroy();
          }
        });
      });
    });
    const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ...options });
    client.on('error', () => {});
    return await received;
  } finally {
    server.close();
  }
}

describe('inspectClientHello', () => {
  it('reads the ALPN list of real ClientHellos', async () => {
    expect(inspectClientHello(await clientHello({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'] }))).toEqual({ kind: 'hello', alpn: ['acme-tls/1'] });
    expect(inspectClientHello(await clientHello({ servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] }))).toEqual({ kind: 'hello', alpn: ['h2', 'http/1.1'] });
    expect(inspectClientHello(await clientHello({ servername: 'a.test' }))).toEqual({ kind: 'hello', alpn: [] });
    // TLS 1.2 only: no TLS 1.3 extensions, a different layout after the ciphers.
    expect(inspectClientHello(await clientHello({ ALPNProtocols: ['acme-tls/1'], maxVersion: 'TLSv1.2' }))).toEqual({ kind: 'hello', alpn: ['acme-tls/1'] });
  });

  it('asks for more bytes until the first record is complete, at every cut', async () => {
    const hello = await clientHello({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'] });
    for (let cut = 0; cut < hello.length; cut++) expect(inspectClientHello(hello.subarray(0, cut))).toEqual({ kind: 'more' });
    // Bytes after the record (another record, say) do not matter.
    expect(inspectClientHello(Buffer.concat([hello, Buffer.from([0x16, 0x03])]))).toEqual({ kind: 'hello', alpn: ['acme-tls/1'] });
  });

  it('calls anything else "other": plain HTTP, a ClientHello fragmented over two records, garbage inside a record', async () => {
    expect(inspectClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'other' });
    const hello = await clientHello({ servername: 'a.test', ALPNProtocols: ['acme-tls/1'] });
    const message = hello.subarray(5);
    const record = (payload: Buffer): Buffer => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, payload.length >> 8, payload.length & 0xff]), payload]);
    const half = Math.floor(message.length / 2);
    expect(inspectClientHello(Buffer.concat([record(message.subarray(0, half)), record(message.subarray(half))]))).toEqual({ kind: 'other' });
    // Claimed lengths that run past the record.
    const broken = Buffer.from(hello);
    broken.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + broken[5 + 4 + 2 + 32]!);
    expect(inspectClientHello(broken)).toEqual({ kind: 'other' });
    expect(inspectClientHello(record(Buffer.from([0x02, 0, 0, 0])))).toEqual({ kind: 'other' });
  });
});
