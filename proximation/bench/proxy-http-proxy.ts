/**
 * The http-proxy 1.18 reference row: starts `http-proxy-reference-server.js` under the current Node.
 * HTTP/1.1 only, so the HTTP/2 scenario does not apply. Throws as `ProxyUnderTest.start` documents.
 */
import type { ProxyUnderTest } from './proxy.js';
import { startReferenceServer } from './reference-process.js';

export const httpProxyReference: ProxyUnderTest = {
  key: 'http-proxy',
  label: 'http-proxy 1.18',
  supportsHttp2: false,
  start: (ctx) => startReferenceServer(ctx, 'http-proxy reference', './http-proxy-reference-server.js', {}),
};
