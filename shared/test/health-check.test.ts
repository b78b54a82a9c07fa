import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkUpstreams, healthCheckFailed } from '../src/health-check.js';
import { refusingOrigin, startServer, upstream } from './helpers.js';

describe('checkUpstreams', () => {
  it('passes on 2xx and 3xx at the first attempt, without following redirects', async () => {
    const ok = await upstream(204);
    const refusing = await refusingOrigin();
    const redirecting = await startServer((_req, res) => {
      res.writeHead(301, { location: `${refusing}/elsewhere` });
      res.end();
    });
    const results = await checkUpstreams([ok.origin, redirecting.origin], { path: '/health', timeoutMs: 1_000 });
    expect(results).toEqual([
      { upstream: ok.origin, healthy: true, attempts: 1, outcome: 'answered 204 No Content' },
      { upstream: redirecting.origin, healthy: true, attempts: 1, outcome: 'answered 301 Moved Permanently' },
    ]);
    expect(redirecting.requests).toEqual(['GET /health']);
  });

  it('retries every interval until the timeout and reports the last answer', async () => {
    const missing = await upstream(404);
    const started = Date.now();
    const [result] = await checkUpstreams([missing.origin], { path: '/', timeoutMs: 500, intervalMs: 100 });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(result).toMatchObject({ healthy: false, outcome: 'answered 404 Not Found' });
    expect(result!.attempts).toBeGreaterThanOrEqual(3);
    expect(missing.requests).toHaveLength(result!.attempts);
  });

  it('reports an upstream that never answers, giving each attempt at least 1s', async () => {
    const silent = await startServer(() => undefined);
    const [result] = await checkUpstreams([silent.origin], { path: '/', timeoutMs: 100 });
    expect(result).toEqual({ upstream: silent.origin, healthy: false, attempts: 1, outcome: 'did not answer within 1s' });
  });

  it('reports refused connections', async () => {
    const refusing = await refusingOrigin();
    const [result] = await checkUpstreams([refusing], { path: '/', timeoutMs: 200, intervalMs: 50 });
    expect(result).toMatchObject({ healthy: false, outcome: 'refused the connection (ECONNREFUSED)' });
  });
});

describe('checkUpstreams on h2c upstreams', () => {
  it('checks over HTTP/2 with prior knowledge, and reports its status and refusals', async () => {
    const seen: string[] = [];
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      seen.push(`${headers[':method']} ${headers[':path']} ${headers['user-agent']}`);
      stream.respond({ ':status': headers[':path'] === '/down' ? 503 : 204 });
      stream.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const origin = `h2c://127.0.0.1:${(server.address() as AddressInfo).port}`;
      expect(await checkUpstreams([origin], { path: '/health', timeoutMs: 1_000 })).toEqual([{ upstream: origin, healthy: true, attempts: 1, outcome: 'answered 204 No Content' }]);
      const [down] = await checkUpstreams([origin], { path: '/down', timeoutMs: 200, intervalMs: 50 });
      expect(down).toMatchObject({ healthy: false, outcome: 'answered 503 Service Unavailable' });
      expect(seen[0]).toBe('GET /health proximation health check');
      const refusing = (await refusingOrigin()).replace('http:', 'h2c:');
      const [refused] = await checkUpstreams([refusing], { path: '/', timeoutMs: 200, intervalMs: 50 });
      expect(refused).toMatchObject({ healthy: false, outcome: 'refused the connection (ECONNREFUSED)' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('gives up on an h2c upstream that never answers', async () => {
    const server = http2.createServer();
    server.on('stream', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const origin = `h2c://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const [result] = await checkUpstreams([origin], { path: '/', timeoutMs: 100 });
      expect(result).toEqual({ upstream: origin, healthy: false, attempts: 1, outcome: 'did not answer within 1s' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('healthCheckFailed', () => {
  it('names the failed upstreams with what they answered', () => {
    const results = [
      { upstream: 'http://a', healthy: false, attempts: 1, outcome: 'answered 500 Internal Server Error' },
      { upstream: 'http://b', healthy: false, attempts: 7, outcome: 'refused the connection (ECONNREFUSED)' },
    ];
    const error = healthCheckFailed('Did not activate dev/v2', results, { path: '/healthz', timeoutMs: 1_500 }, 'dev/v1 keeps serving.');
    expect(error).toMatchObject({ code: 'ERR_HEALTH_CHECK_FAILED' });
    expect(error.message).toBe(
      'Did not activate dev/v2: all 2 upstreams did not pass the health check (GET /healthz answering 2xx or 3xx within 1s500ms):\n' +
        '  http://a: GET /healthz answered 500 Internal Server Error (1 attempt)\n' +
        '  http://b: GET /healthz refused the connection (ECONNREFUSED) (7 attempts)\n' +
        'dev/v1 keeps serving.',
    );
  });
});
