/**
 * gRPC through proximation: a @grpc/grpc-js client speaks TLS HTTP/2 to the proxy, which forwards to an
 * h2c:// upstream running a @grpc/grpc-js server. Unary and server-streaming calls keep their messages,
 * status and trailing metadata; an error status the server sends as a trailers-only response (grpc-status
 * in the one HEADERS frame, with END_STREAM) reaches the client as that one frame.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { expect, it } from 'vitest';
import { managed, startProxy, table, type Proxy } from '../support/fixtures.js';

const resources = managed();

const text = { serialize: (value: string) => Buffer.from(value), deserialize: (bytes: Buffer) => bytes.toString() };
const SERVICE: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: text.serialize, requestDeserialize: text.deserialize, responseSerialize: text.serialize, responseDeserialize: text.deserialize },
  Find: { path: '/test.Echo/Find', requestStream: false, responseStream: false, requestSerialize: text.serialize, requestDeserialize: text.deserialize, responseSerialize: text.serialize, responseDeserialize: text.deserialize },
  Count: { path: '/test.Echo/Count', requestStream: false, responseStream: true, requestSerialize: text.serialize, requestDeserialize: text.deserialize, responseSerialize: text.serialize, responseDeserialize: text.deserialize },
};

async function grpcUpstream(seen: grpc.Metadata[]): Promise<string> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<string, string>, callback: grpc.sendUnaryData<string>) => {
      seen.push(call.metadata);
      const trailer = new grpc.Metadata();
      trailer.set('x-served-by', 'upstream');
      callback(null, `echo ${call.request}`, trailer);
    },
    Find: (call: grpc.ServerUnaryCall<string, string>, callback: grpc.sendUnaryData<string>) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-looked-in', 'shelf');
      callback({ code: grpc.status.NOT_FOUND, details: `no ${call.request} here`, metadata });
    },
    Count: (call: grpc.ServerWritableStream<string, string>) => {
      for (let i = 1; i <= 3; i++) call.write(`${call.request} ${i}`);
      const trailer = new grpc.Metadata();
      trailer.set('x-count', '3');
      call.end(trailer);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  resources.defer(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return `h2c://127.0.0.1:${port}`;
}

async function proxyTo(upstream: string): Promise<Proxy> {
  const proxy = await startProxy(table([{ name: 'api', hosts: ['api.test'], upstreams: [upstream] }]));
  resources.defer(() => proxy.close());
  return proxy;
}

function grpcClient(proxy: Proxy): grpc.Client {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
  const client = new Client(`127.0.0.1:${proxy.server.https.port}`, grpc.credentials.createSsl(Buffer.from(proxy.ca)), {
    'grpc.ssl_target_name_override': 'api.test',
    'grpc.default_authority': 'api.test',
  });
  resources.defer(async () => client.close());
  return client;
}

it('passes gRPC unary and server-streaming calls, with status and trailers, to an h2c upstream', async () => {
  const seen: grpc.Metadata[] = [];
  const client = grpcClient(await proxyTo(await grpcUpstream(seen)));

  const unary = await new Promise<{ reply: string; trailers: grpc.Metadata }>((resolve, reject) => {
    let reply = '';
    const call = client.makeUnaryRequest('/test.Echo/Echo', text.serialize, text.deserialize, 'hi', (err: grpc.ServiceError | null, value?: string) => {
      if (err) reject(err);
      else reply = value ?? '';
    });
    call.on('status', (status: grpc.StatusObject) => resolve({ reply, trailers: status.metadata }));
  });
  expect(unary.reply).toBe('echo hi');
  expect(unary.trailers.get('x-served-by')).toEqual(['upstream']);
  // The upstream got the call as the proxy forwards any request (grpc-js hides its reserved headers).
  expect(seen[0]!.get('x-forwarded-host')).toEqual(['api.test']);

  const stream = client.makeServerStreamRequest('/test.Echo/Count', text.serialize, text.deserialize, 'n');
  const messages: string[] = [];
  stream.on('data', (message: string) => messages.push(message));
  const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  expect(messages).toEqual(['n 1', 'n 2', 'n 3']);
  expect(status.code).toBe(grpc.status.OK);
  expect(status.metadata.get('x-count')).toEqual(['3']);
}, 30_000);

it('passes an error status sent as a trailers-only response: code, details and metadata, in one HEADERS frame with END_STREAM', async () => {
  const proxy = await proxyTo(await grpcUpstream([]));
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    const call = grpcClient(proxy).makeUnaryRequest('/test.Echo/Find', text.serialize, text.deserialize, 'key', () => {});
    call.on('status', resolve);
  });
  expect(status.code).toBe(grpc.status.NOT_FOUND);
  expect(status.details).toBe('no key here');
  expect(status.metadata.get('x-looked-in')).toEqual(['shelf']);

  // The frames: a raw HTTP/2 client sees the one HEADERS frame end the stream (so no DATA, no trailers).
  const session = http2.connect(`https://127.0.0.1:${proxy.server.https.port}`, { ca: proxy.ca, servername: 'api.test' });
  resources.defer(async () => void session.close());
  const message = Buffer.from('key');
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Find', ':authority': 'api.test', 'content-type': 'application/grpc', te: 'trailers' });
  stream.end(Buffer.concat([prefix, message]));
  const frames: string[] = [];
  const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    stream.on('response', (h, flags) => {
      headers = h;
      frames.push((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 ? 'HEADERS END_STREAM' : 'HEADERS');
    });
    stream.on('data', (chunk: Buffer) => frames.push(`DATA ${chunk.length}`));
    stream.on('trailers', () => frames.push('trailers'));
    stream.on('end', () => resolve(headers));
    stream.on('error', reject);
  });
  expect(frames).toEqual(['HEADERS END_STREAM']);
  expect(head).toMatchObject({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-status': '5', 'grpc-message': 'no%20key%20here', 'x-looked-in': 'shelf' });
}, 30_000);
