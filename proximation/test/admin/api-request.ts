/**
 * Test support for the admin API: one real HTTP request to a proxy's admin listener, with the answer's
 * status, headers and body (parsed when it is JSON).
 */
import http from 'node:http';
import type { Proxy } from '../support/fixtures.js';

export const TOKEN = 'test-admin-token-0123456789abcdef';

export interface ApiAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed body when it is JSON; tests look into it freely. */
  json: any;
}

export function apiRequest(
  proxy: Proxy,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown; headers?: http.OutgoingHttpHeaders } = {},
): Promise<ApiAnswer> {
  const token = options.token === undefined ? TOKEN : options.token;
  const payload = options.body === undefined ? undefined : typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: proxy.server.admin.port,
        method,
        path,
        agent: false,
        // A header given as undefined is left out (to send a body without Content-Length, say).
        headers: Object.fromEntries(
          Object.entries({
            ...(token === null ? {} : { authorization: `Bearer ${token}` }),
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
            ...options.headers,
          }).filter(([, value]) => value !== undefined),
        ),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const json = /json/.test(res.headers['content-type'] ?? '') ? JSON.parse(text) : undefined;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export function postChange(proxy: Proxy, body: unknown, headers: http.OutgoingHttpHeaders = {}): Promise<ApiAnswer> {
  return apiRequest(proxy, 'POST', '/api/routes/changes', { body, headers });
}
