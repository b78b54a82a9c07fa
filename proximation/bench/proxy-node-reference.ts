/**
 * The four Node reference rows (see `node-reference-server.ts`): Node's HTTPS server answering by itself,
 * a minimal undici proxy, a minimal proxy on plain sockets, and the same without Node's HTTP server
 * (HTTP/1.1 only). They run under the Node running the benchmark, which is the image's.
 * Throws as `ProxyUnderTest.start` documents.
 */
import type { ProxyUnderTest } from './proxy.js';
import { startReferenceServer } from './reference-process.js';

function nodeReference(key: string, label: string, mode: 'answer' | 'undici' | 'sockets' | 'raw'): ProxyUnderTest {
  return {
    key,
    label,
    supportsHttp2: mode !== 'raw',
    start: (ctx) => startReferenceServer(ctx, label, './node-reference-server.js', { BENCH_NODE_MODE: mode }),
  };
}

export const nodeAnswering = nodeReference('node-answer', 'Node HTTPS server answering itself', 'answer');
export const nodeMinimalProxy = nodeReference('node-undici', 'minimal undici proxy', 'undici');
export const nodeSocketsProxy = nodeReference('node-sockets', 'minimal proxy on plain sockets', 'sockets');
export const nodeRawProxy = nodeReference('node-raw', 'minimal proxy without an HTTP server (HTTP/1.1)', 'raw');
