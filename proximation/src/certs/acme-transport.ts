/**
 * How acme-client reaches the ACME server: whom it trusts, how long it waits, and what a failure says.
 *
 * acme-client sends every request through one shared axios instance (`acme.axios`). Left alone it
 * (1) trusts only Node's roots, (2) waits forever for a silent server, and (3) retries a failed
 * connection five times over 75 s and then throws a TypeError from its retry code, with the real cause
 * only in its debug log. This module installs, once per process, an axios adapter around axios's own
 * HTTP adapter that, for requests made inside `AcmeTransport.run`:
 * - uses the transport's HTTPS agent: Node's roots plus the PEM bundle of PROXIMATION_ACME_CA_CERTS
 *   (added to the roots, never replacing them);
 * - gives every request REQUEST_TIMEOUT_MS;
 * - turns a failure to get any response into a ProximationError at once: ERR_ACME_TLS_UNTRUSTED when
 *   the server's certificate does not verify, ERR_ACME_UNREACHABLE otherwise (refused, reset, timeout,
 *   DNS). Both name the URL, the directory and the underlying error. acme-client's retry code passes
 *   errors without an axios `config` through untouched, which is what makes this fast;
 * - turns HTTP 429 into AcmeRateLimitedError (ERR_ACME_RATE_LIMITED) with the CA's message and its
 *   Retry-After, instead of acme-client sleeping through it while the name's lock is held;
 * - keeps the Replay-Nonce of every response in a pool (RFC 8555 7.2: a client "will have gotten a
 *   nonce from a previous request") and answers acme-client's nonce fetch (its only HEAD request, made
 *   before every signed request) from the pool when it holds one. Without it every request costs a
 *   round trip to newNonce, Let's Encrypt's tightest per-IP limit (20 requests/s, burst 10). Nonces
 *   that acme-client consumes itself are not pooled: that of a HEAD (the fetch it asked for) and that
 *   of a badNonce error (it retries with it). A pooled nonce the CA no longer accepts costs one
 *   badNonce retry, which acme-client makes with the fresh nonce of the error.
 * Anything else (ACME errors, 5xx, which acme-client retries a few times) is left to acme-client.
 * Each transport's settings live in an AsyncLocalStorage context, so issuers with different directories
 * or trust in one process (tests) never see each other's agent. acme-client's log lines go to the
 * transport's logger at trace level.
 *
 * `openAcmeTransport` throws ERR_CONFIG_INVALID when the CA bundle cannot be read or holds no certificate.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { createRequire } from 'node:module';
import tls from 'node:tls';
import acme from 'acme-client';
import type { AxiosAdapter, AxiosError, InternalAxiosRequestConfig } from 'axios';
import { ProximationError, errorMessage } from '@proximation/shared';
import type { Logger } from '../logger.js';
import { AcmeRateLimitedError } from './acme-rate-limited-error.js';

const REQUEST_TIMEOUT_MS = 30_000;
/** Enough for every request in flight at the most concurrent moment; older nonces are dropped first. */
const NONCE_POOL_SIZE = 64;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/**
 * Node's codes for a peer certificate that does not verify: OpenSSL's X509_V_ERR_* names
 * (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED...) and ERR_TLS_CERT_ALTNAME_INVALID.
 */
const TLS_TRUST_ERRORS = /CERT|ISSUER|SIGNATURE/;

interface TransportContext {
  directoryUrl: string;
  agent: https.Agent | undefined;
  log: Logger;
  /** Unused nonces from the CA's responses, newest last. */
  nonces: string[];
}

export class AcmeTransport {
  constructor(private readonly context: TransportContext) {}

  /** Runs `fn`, whose acme-client requests then use this transport. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    installAdapter();
    return storage.run(this.context, fn);
  }
}

export async function openAcmeTransport(options: { directoryUrl: string; caCertsPath: string | undefined; log: Logger }): Promise<AcmeTransport> {
  const extra = options.caCertsPath === undefined ? undefined : await readCaBundle(options.caCertsPath);
  // One TLS context for every connection. Given as `ca`, the ~150 roots would be parsed again for each
  // new connection and joined into the agent's pool key on every request: most of the CPU an order took.
  const agent = extra === undefined ? undefined : new https.Agent({ keepAlive: true, secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra] }) });
  return new AcmeTransport({ directoryUrl: options.directoryUrl, agent, log: options.log, nonces: [] });
}

async function readCaBundle(file: string): Promise<string[]> {
  const invalid = (reason: string, cause?: unknown) =>
    new ProximationError('ERR_CONFIG_INVALID', `PROXIMATION_ACME_CA_CERTS=${file}: ${reason}. Give a PEM file with the CA certificate(s) the ACME server's HTTPS certificate chains to.`, { cause });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalid(`cannot read it (${errorMessage(err)})`, err);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw invalid('it holds no PEM certificate');
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw invalid(`a certificate in it does not parse (${errorMessage(err)})`, err);
    }
  }
  return pems;
}

const storage = new AsyncLocalStorage<TransportContext>();
let installed = false;

function installAdapter(): void {
  if (installed) return;
  installed = true;
  const http = axiosOfAcmeClient().getAdapter('http');
  const adapter: AxiosAdapter = async (config) => {
    const context = storage.getStore();
    if (context === undefined) return http(config);
    const nonceFetch = config.method?.toLowerCase() === 'head';
    const pooled = nonceFetch ? context.nonces.pop() : undefined;
    if (pooled !== undefined) return { data: '', status: 200, statusText: 'OK', headers: { 'replay-nonce': pooled }, config, request: undefined };
    if (context.agent !== undefined) config.httpsAgent = context.agent;
    config.timeout ||= REQUEST_TIMEOUT_MS;
    // acme-client makes axios reject every response (its interceptor sorts them out), so the nonce of
    // most responses is found on the error.
    try {
      const response = await http(config);
      if (!nonceFetch) keepNonce(context, response);
      return response;
    } catch (err) {
      const response = (err as AxiosError).response;
      if (!nonceFetch && response !== undefined) keepNonce(context, response);
      throw translate(err as AxiosError, config, context) ?? err;
    }
  };
  acme.axios.defaults.adapter = adapter;
  acme.setLogger((message) => storage.getStore()?.log.trace({ acme: message }, 'acme-client'));
}

function keepNonce(context: TransportContext, response: { status: number; headers: Record<string, unknown>; data: unknown }): void {
  const nonce = response.headers['replay-nonce'];
  if (typeof nonce !== 'string' || nonce === '' || isBadNonce(response.status, response.data)) return;
  context.nonces.push(nonce);
  if (context.nonces.length > NONCE_POOL_SIZE) context.nonces.shift();
}

/**
 * The axios module acme-client itself loads (resolved from acme-client's own location, so it is the
 * same copy and version), for its built-in HTTP adapter.
 */
function axiosOfAcmeClient(): { getAdapter(name: string): AxiosAdapter } {
  const fromHere = createRequire(import.meta.url);
  return createRequire(fromHere.resolve('acme-client'))('axios') as { getAdapter(name: string): AxiosAdapter };
}

function translate(err: AxiosError, config: InternalAxiosRequestConfig, context: TransportContext): ProximationError | undefined {
  const request = `${(config.method ?? 'get').toUpperCase()} ${config.url ?? '?'}`;
  const response = err.response;
  if (response === undefined) {
    const code = err.code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code ?? '';
    const cause = `${errorMessage(err)}${code !== '' && !errorMessage(err).includes(code) ? ` (${code})` : ''}`;
    if (TLS_TRUST_ERRORS.test(code)) {
      return new ProximationError(
        'ERR_ACME_TLS_UNTRUSTED',
        `the ACME server's HTTPS certificate is not trusted: ${request} failed: ${cause}. Directory: ${context.directoryUrl}. ` +
          "If the CA's server uses a private or test CA for its own HTTPS (Pebble does), set PROXIMATION_ACME_CA_CERTS to a PEM file holding that CA.",
        { cause: err },
      );
    }
    return new ProximationError(
      'ERR_ACME_UNREACHABLE',
      `cannot reach the ACME server: ${request} failed: ${cause}. Directory: ${context.directoryUrl}. Check PROXIMATION_ACME_DIRECTORY and the network; existing certificates are still served.`,
      { cause: err },
    );
  }
  if (response.status === 429) {
    const retryAfter = parseRetryAfter(response.headers['retry-after']);
    const detail = problemDetail(response.data);
    return new AcmeRateLimitedError(
      `the ACME server rate-limits this request (${request}): ${detail ?? 'HTTP 429'}` +
        `${retryAfter === undefined ? '' : `; retry after ${retryAfter.toISOString()}`}. Directory: ${context.directoryUrl}.`,
      retryAfter,
    );
  }
  return undefined;
}

/** The RFC 7807 problem document in a response body; adapters see the body before axios parses it. */
function problem(data: unknown): { type?: unknown; detail?: unknown } | undefined {
  try {
    return (typeof data === 'string' ? JSON.parse(data) : data) as { type?: unknown; detail?: unknown } | undefined;
  } catch {
    return undefined;
  }
}

function problemDetail(data: unknown): string | undefined {
  const detail = problem(data)?.detail;
  return typeof detail === 'string' ? detail : undefined;
}

function isBadNonce(status: number, data: unknown): boolean {
  return status === 400 && problem(data)?.type === 'urn:ietf:params:acme:error:badNonce';
}

/** An HTTP Retry-After value (seconds or an HTTP date) as the time it names; undefined when absent or unreadable. */
export function parseRetryAfter(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return new Date(Date.now() + Number(value.trim()) * 1000);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
