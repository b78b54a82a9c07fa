/**
 * Waiting for an ACME resource (an authorization, an order being finalized) to leave its transient
 * status, the way RFC 8555 asks (7.5.1: poll with POST-as-GET; 8.2 and 7.4: honour Retry-After).
 *
 * `pollResource` first asks after POLL_FIRST_MS (the caller has just started the work: asking at once
 * would find it unfinished), then after each answer waits for the CA's Retry-After when it sends one,
 * else for a delay that grows by half each time up to POLL_MAX_MS.
 * Validation and issuance take well under a second at Pebble and a few seconds at Let's Encrypt, so a
 * short first interval saves most of the wait (acmez, behind Caddy and certmagic, polls every 250 ms
 * unless told otherwise), and the growth keeps a slow CA from being asked 4 times a second per order.
 * It resolves with the resource once its status is not in `transient`; the caller judges that status.
 * It throws what the request throws (acme-client's errors, the transport's ProximationErrors), or
 * ERR_ACME_POLL_TIMEOUT naming the URL and the last status when the resource is still transient after POLL_TIMEOUT_MS
 * (or when the CA's Retry-After points past it).
 *
 * acme-client 5.4 (pinned) has the POST-as-GET with the response headers only on its internal `api`
 * object; its own waitForValidStatus ignores Retry-After and backs off from 5 s.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'acme-client';
import { ProximationError } from '@proximation/shared';
import { parseRetryAfter } from './acme-transport.js';

export const POLL_FIRST_MS = 250;
export const POLL_MAX_MS = 5_000;
export const POLL_TIMEOUT_MS = 90_000;

/** The part of acme-client's internal API used here: a signed POST-as-GET with the whole response. */
interface AcmeApi {
  apiRequest(url: string, payload: null, validStatusCodes: number[]): Promise<{ data: unknown; headers: Record<string, unknown> }>;
}

export async function pollResource<T extends { status: string }>(client: Client, url: string, transient: readonly string[]): Promise<T> {
  const api = (client as unknown as { api: AcmeApi }).api;
  const started = Date.now();
  let backoff = POLL_FIRST_MS;
  for (let wait = backoff; ; ) {
    await sleep(wait);
    const response = await api.apiRequest(url, null, [200]);
    const resource = response.data as T;
    if (!transient.includes(resource.status)) return resource;
    const retryAfter = parseRetryAfter(response.headers['retry-after']);
    backoff = Math.min(backoff * 1.5, POLL_MAX_MS);
    wait = retryAfter === undefined ? backoff : Math.max(POLL_FIRST_MS, retryAfter.getTime() - Date.now());
    if (Date.now() + wait > started + POLL_TIMEOUT_MS) {
      throw new ProximationError(
        'ERR_ACME_POLL_TIMEOUT',
        `${url} is still ${resource.status} after ${Math.round((Date.now() - started) / 1000)} s of polling; the CA did not finish in ${POLL_TIMEOUT_MS / 1000} s`,
      );
    }
  }
}
