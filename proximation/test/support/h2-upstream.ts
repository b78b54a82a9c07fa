/**
 * A real HTTP/2 upstream for the tests: node:http2 in clear (for `h2c://`) or over TLS (for `h2://`),
 * recording every stream's header list as it was decoded (pseudo-headers included, in arrival order)
 * and how many sessions reached it. `close()` destroys the sessions left and stops listening.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface ReceivedStream {
  /** The decoded header list, [name, value, ...], as the upstream got it. */
  readonly rawHeaders: readonly string[];
  readonly headers: http2.IncomingHttpHeaders;
  /** Which session (0, 1, ...) carried it. */
  readonly session: number;
}

export interface H2Upstream {
  /** Such as h2c://127.0.0.1:41234. */
  readonly origin: string;
  readonly port: number;
  readonly server: http2.Http2Server | http2.Http2SecureServer;
  readonly streams: ReceivedStream[];
  /** Sessions opened so far. */
  sessions(): number;
  close(): Promise<void>;
}

export interface H2UpstreamOptions {
  settings?: http2.Settings;
  /** Serve over TLS with this key and certificate (origin h2://). */
  tls?: { key: string; cert: string };
  /** Node's cap on a session's memory in MB (10 by default; past it new streams are refused). */
  maxSessionMemory?: number;
}

export async function startH2Upstream(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, received: ReceivedStream) => void,
  options: H2UpstreamOptions = {},
): Promise<H2Upstream> {
  const serverOptions = { settings: options.settings, maxSessionMemory: options.maxSessionMemory };
  const server = options.tls === undefined ? http2.createServer(serverOptions) : http2.createSecureServer({ ...options.tls, ...serverOptions });
  const sessions = new Set<http2.ServerHttp2Session>();
  const streams: ReceivedStream[] = [];
  const index = new WeakMap<http2.ServerHttp2Session, number>();
  let opened = 0;
  server.on('session', (session) => {
    index.set(session, opened++);
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    stream.on('error', () => {});
    const received = { rawHeaders, headers, session: index.get(stream.session as http2.ServerHttp2Session) ?? -1 };
    streams.push(received);
    onStream(stream, headers, received);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `${options.tls === undefined ? 'h2c' : 'h2'}://127.0.0.1:${port}`,
    port,
    server,
    streams,
    sessions: () => opened,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }),
  };
}

/** Reads a stream's whole request body. */
export function readBody(stream: http2.ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}
