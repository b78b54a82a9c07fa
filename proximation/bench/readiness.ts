/**
 * Decides when a started server is ready: polls a check until it passes, with a deadline.
 * Requests go to 127.0.0.1 only; HTTPS checks present SNI `localhost` and verify the certificate against
 * the given root, so "ready" means the certificate clients will see is in place.
 * Throws `ProximationError('ERR_BENCH_NOT_READY')` when the deadline passes or a watched service exits,
 * with the last failure and the end of the services' logs.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProximationError, errorMessage } from '@proximation/shared';
import type { Service } from './children.js';

const REQUEST_TIMEOUT_MS = 2_000;
const POLL_INTERVAL_MS = 100;

/** Sends one GET and returns the status and body size. */
export function fetchLocal(
  port: number,
  path: string,
  tls?: { readonly ca: string; readonly servername: string },
): Promise<{ status: number; bodyBytes: number }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      let bodyBytes = 0;
      res.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bodyBytes }));
      res.on('error', reject);
    };
    const common = { host: '127.0.0.1', port, path, agent: false, timeout: REQUEST_TIMEOUT_MS } as const;
    const req =
      tls === undefined
        ? httpRequest({ ...common, headers: { host: `localhost:${port}` } }, onResponse)
        : httpsRequest(
            { ...common, ca: tls.ca, servername: tls.servername, headers: { host: `${tls.servername}:${port}` } },
            onResponse,
          );
    req.on('timeout', () => req.destroy(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Fetches and throws unless the answer is 200 with exactly `bodyBytes` bytes. */
export async function expectBody(
  port: number,
  path: string,
  bodyBytes: number,
  tls?: { readonly ca: string; readonly servername: string },
): Promise<void> {
  const got = await fetchLocal(port, path, tls);
  if (got.status !== 200 || got.bodyBytes !== bodyBytes) {
    throw new Error(`GET ${path} on port ${port} gave ${got.status} with ${got.bodyBytes} bytes`);
  }
}

/** Retries `check` until it resolves; fails fast if one of `services` exits meanwhile. */
export async function pollUntilReady<T>(
  what: string,
  timeoutMs: number,
  services: readonly Service[],
  check: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'not tried';
  for (;;) {
    const dead = services.find((s) => s.exitStatus() !== undefined);
    if (dead !== undefined) {
      throw new ProximationError(
        'ERR_BENCH_NOT_READY',
        `${what}: ${dead.name} exited (${dead.exitStatus()}) before it was ready; its log ${dead.logPath} ends:\n` +
          dead.logTail(),
      );
    }
    try {
      return await check();
    } catch (err) {
      lastError = errorMessage(err);
    }
    if (Date.now() >= deadline) {
      const logs = services.map((s) => `--- ${s.logPath}\n${s.logTail()}`).join('\n');
      throw new ProximationError(
        'ERR_BENCH_NOT_READY',
        `${what}: not ready after ${timeoutMs} ms (last failure: ${lastError}).\n${logs}`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }
}
