import { describe, expect, it } from 'vitest';
import { normalizeUpstreamUrl } from '../src/routing-table.js';
import { upstreamEndpoint } from '../src/upstream-origin.js';
import { DEFAULT_PROXY_PORTS, ownListenerProblem } from '../src/upstream-target.js';

describe('upstreamEndpoint', () => {
  it.each([
    ['http://10.0.0.1:8080', { scheme: 'http:', http2: false, tls: false, hostname: '10.0.0.1', port: 8080, authority: '10.0.0.1:8080' }],
    ['https://app.internal', { scheme: 'https:', http2: false, tls: true, hostname: 'app.internal', port: 443, authority: 'app.internal' }],
    ['h2c://10.0.0.1', { scheme: 'h2c:', http2: true, tls: false, hostname: '10.0.0.1', port: 80, authority: '10.0.0.1' }],
    ['h2c://[::1]:50051', { scheme: 'h2c:', http2: true, tls: false, hostname: '::1', port: 50051, authority: '[::1]:50051' }],
    ['h2://grpc.internal', { scheme: 'h2:', http2: true, tls: true, hostname: 'grpc.internal', port: 443, authority: 'grpc.internal' }],
  ])('%s', (origin, endpoint) => {
    expect(upstreamEndpoint(origin)).toEqual(endpoint);
  });

  it('refuses what is no upstream origin', () => {
    expect(() => upstreamEndpoint('ftp://x')).toThrow(TypeError);
  });
});

describe('ownListenerProblem with the HTTP/2 schemes', () => {
  it('finds the proxy\'s own ports by each scheme\'s default port', () => {
    // h2 defaults to 443 as https does, h2c to 80 as http does.
    expect(ownListenerProblem(normalizeUpstreamUrl('h2://127.0.0.1', 't'), DEFAULT_PROXY_PORTS, new Set())).toContain('port 443');
    expect(ownListenerProblem(normalizeUpstreamUrl('h2c://localhost:80', 't'), DEFAULT_PROXY_PORTS, new Set())).toContain('port 80');
    expect(ownListenerProblem('h2c://10.1.2.3:9180', DEFAULT_PROXY_PORTS, new Set(['10.1.2.3']))).toContain('port 9180');
    expect(ownListenerProblem('h2c://127.0.0.1:50051', DEFAULT_PROXY_PORTS, new Set())).toBeUndefined();
    expect(ownListenerProblem('h2://app.internal', DEFAULT_PROXY_PORTS, new Set())).toBeUndefined();
  });
});
