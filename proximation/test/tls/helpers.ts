/**
 * For the TLS tests: a real HttpsListener on 127.0.0.1 serving the SNI contexts a test gives it, and
 * client handshakes that report what was negotiated (or how the server refused).
 */
import tls from 'node:tls';
import { HttpsListener } from '../../src/listeners/https-listener.js';
import { within } from '../support/process.js';

export async function startListener(
  SNICallback: ConstructorParameters<typeof HttpsListener>[0]['SNICallback'],
  defer: (close: () => Promise<void>) => void,
  extra: Pick<ConstructorParameters<typeof HttpsListener>[0], 'acmeTlsAlpn'> = {},
): Promise<{ listener: HttpsListener; port: number }> {
  const listener = new HttpsListener({
    port: 0,
    host: '127.0.0.1',
    SNICallback,
    onRequest: (_req, res) => res.end('hello'),
    onUpgrade: (_req, socket) => socket.destroy(),
    headersTimeoutMs: 5000,
    requestTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    maxHeaderSize: 16384,
    maxConnections: 100,
    ...extra,
  });
  const { port } = await listener.listen();
  defer(() => listener.drain(Date.now() + 1000));
  return { listener, port };
}

export interface Handshake {
  protocol: string | null;
  cipher: string;
  reused: boolean;
}

/** A completed handshake with the server on `port` (SNI, CA, versions, ciphers, session from `options`), then closed. */
export async function handshake(port: number, options: tls.ConnectionOptions): Promise<Handshake> {
  return (await connect(port, options, false)).result;
}

/** A handshake as above that waits for the server's first session ticket (TLS 1.3 sends it after the handshake). */
export async function newSession(port: number, options: tls.ConnectionOptions): Promise<Handshake & { session: Buffer }> {
  const { result, session } = await connect(port, options, true);
  return { ...result, session: session! };
}

async function connect(port: number, options: tls.ConnectionOptions, waitForTicket: boolean): Promise<{ result: Handshake; session?: Buffer }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], ...options });
  try {
    const ticket = new Promise<Buffer>((resolve) => socket.once('session', resolve));
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().name, reused: socket.isSessionReused() };
    return waitForTicket ? { result, session: await within(ticket, 5000, `a session ticket for ${options.servername}`) } : { result };
  } finally {
    socket.destroy();
  }
}

/** The error code of a handshake the server refuses; rejects if the handshake succeeds. */
export function refusal(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('secureConnect', () => {
      reject(new Error(`the server accepted ${socket.getProtocol()} with ${socket.getCipher().name}`));
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}
