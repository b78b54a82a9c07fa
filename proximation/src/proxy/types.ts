import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

/** The HTTPS listener speaks HTTP/2 and HTTP/1.1; Node's compatibility API gives both this shape. */
export type ProxyRequest = IncomingMessage | Http2ServerRequest;
export type ProxyResponse = ServerResponse | Http2ServerResponse;

/** What the proxy needs of a response; HTTP/1.1 and HTTP/2 responses both provide it. */
export interface ResponseSink {
  readonly headersSent: boolean;
  statusCode: number;
  /** Bytes written and not yet taken by the client. */
  readonly writableLength: number;
  hasHeader(name: string): boolean;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  addTrailers(trailers: OutgoingHttpHeaders): void;
  /** `flushed` runs once the chunk left the process's buffers (maybe never if the response is destroyed). */
  write(chunk: Buffer, flushed?: () => void): boolean;
  end(): unknown;
  end(chunk: string): unknown;
  destroy(error?: Error): unknown;
  /** HTTP/1.1 only: batch writes until uncork. */
  cork?(): void;
  uncork?(): void;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}
