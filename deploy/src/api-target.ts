/**
 * A proxy's admin API as a RoutesTarget (`--proxy URL`, `DEPLOY_PROXY_URL`): `GET /api/routes` reads,
 * `POST /api/routes/changes` sends a change request, which the proxy applies to the shared routing
 * table under the same lock as file mode, after running the health check itself when the request asks
 * for one (see admin-api.ts in @proximation/shared for the wire format). The admin token goes in an
 * `Authorization: Bearer` header and in no message: it is read once, from `--token-file` (trimmed) or
 * DEPLOY_TOKEN.
 *
 * Rejects with ProximationError: the error the proxy answered, with its code and message (a
 * HealthCheckFailedError keeps the proxy's check results); ERR_PROXY_UNREACHABLE when no answer came
 * (naming the URL and what happened); ERR_PROXY_RESPONSE when the answer is not the admin API's JSON
 * (naming the URL, status and content type); ERR_TOKEN_FILE when the token file cannot be read or holds
 * no usable token; and what `validateRoutingTable` throws for the table the proxy sent.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import {
  ADMIN_CHANGES_PATH,
  ADMIN_ROUTES_PATH,
  HEALTH_GATE_ROUNDS,
  ProximationError,
  describeFetchFailure,
  errorFromBody,
  errorMessage,
  parseChangeResponse,
  validateRoutingTable,
} from '@proximation/shared';
import type { FleetStatus } from '@proximation/shared';
import { deployActor } from './actor.js';
import type { RoutesTarget } from './routes-target.js';

const ADMIN_STATUS_PATH = '/api/status';

/** Where the token comes from: the file named by --token-file, or DEPLOY_TOKEN's value. */
export type TokenSource = { readonly file: string } | { readonly value: string };

/** How long an answer may take, beyond the health check: the proxy may wait for the table's lock. */
const BASE_TIMEOUT_MS = 120_000;
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

export function apiTarget(base: URL, tokenSource: TokenSource): RoutesTarget {
  let token: Promise<string> | undefined;
  const call = async (method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<{ url: string; json: unknown }> => {
    // The base URL may carry a path prefix (a proxy in front of the admin listener).
    const url = new URL(`${base.pathname.replace(/\/$/, '')}${path}`, base);
    return { url: url.href, json: await request(method, url, (token ??= readToken(tokenSource)), body, timeoutMs) };
  };
  return {
    location: base.href,
    async read() {
      const { url, json } = await call('GET', ADMIN_ROUTES_PATH, undefined, BASE_TIMEOUT_MS);
      return validateRoutingTable(json, url);
    },
    async status() {
      // The proxy computes it with the same code (fleet-status.ts); its shape is the contract there.
      return (await call('GET', ADMIN_STATUS_PATH, undefined, BASE_TIMEOUT_MS)).json as FleetStatus;
    },
    async update({ change, healthCheck }, observer) {
      // Only the fields of the wire format: the proxy refuses unknown ones.
      const body = healthCheck === undefined ? { change } : { change, healthCheck: { path: healthCheck.path, timeoutMs: healthCheck.timeoutMs } };
      const timeoutMs = BASE_TIMEOUT_MS + (healthCheck === undefined ? 0 : HEALTH_GATE_ROUNDS * healthCheck.timeoutMs);
      if (healthCheck !== undefined) observer?.remoteCheck?.(base.href, healthCheck);
      const { url, json } = await call('POST', ADMIN_CHANGES_PATH, body, timeoutMs);
      return parseChangeResponse(json, url);
    },
  };
}

async function readToken(source: TokenSource): Promise<string> {
  if ('value' in source) return checkToken(source.value.trim(), 'DEPLOY_TOKEN');
  let text: string;
  try {
    text = await readFile(source.file, 'utf8');
  } catch (err) {
    throw new ProximationError('ERR_TOKEN_FILE', `Cannot read the admin token file ${source.file} (--token-file): ${errorMessage(err)}.`, { cause: err });
  }
  return checkToken(text.trim(), `The admin token file ${source.file} (--token-file)`);
}

function checkToken(token: string, where: string): string {
  // Never show the token itself: only what is wrong with it.
  if (token === '') throw new ProximationError('ERR_TOKEN_FILE', `${where} is empty; it must hold the proxy's admin token (PROXIMATION_ADMIN_TOKEN).`);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ProximationError('ERR_TOKEN_FILE', `${where} holds spaces or other characters a token cannot have; it must hold the proxy's admin token alone.`);
  }
  return token;
}

const actor = deployActor();

async function request(method: 'GET' | 'POST', url: URL, token: Promise<string>, body: unknown, timeoutMs: number): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: http.OutgoingHttpHeaders = {
    authorization: `Bearer ${await token}`,
    accept: 'application/json',
    'user-agent': 'proximation-deploy',
    // For the proxy's change log (who changed what); the proxy records it as the caller's claim.
    'proximation-actor-user': actor.user,
    'proximation-actor-host': actor.host,
    ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
  };
  const send = url.protocol === 'https:' ? https.request : http.request;
  let response: { status: number; statusText: string; contentType: string; text: string };
  try {
    response = await new Promise((resolve, reject) => {
      const req = send(url, { method, headers, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) res.destroy(new Error(`the answer is larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            contentType: res.headers['content-type'] ?? '',
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
      req.on('error', reject);
      req.end(payload);
    });
  } catch (err) {
    throw new ProximationError(
      'ERR_PROXY_UNREACHABLE',
      `The proxy's admin API at ${url.href} ${describeFetchFailure(err, timeoutMs)}. Check --proxy (or DEPLOY_PROXY_URL) and that the proxy's ` +
        'admin listener is reachable from here (PROXIMATION_ADMIN_ADDRESS and PROXIMATION_ADMIN_PORT on the proxy).',
      { cause: err },
    );
  }
  const json = parseJson(response.text, response.contentType);
  const notTheApi = () =>
    new ProximationError(
      'ERR_PROXY_RESPONSE',
      `${url.href} answered ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`} with ` +
        `${response.contentType === '' ? 'no content type' : response.contentType}, not the admin API's JSON. ` +
        'Check that --proxy (or DEPLOY_PROXY_URL) names the admin listener of a proximation (port 9180 by default), not its HTTPS port or another server.',
    );
  if (json === undefined) throw notTheApi();
  if (response.status >= 200 && response.status < 300) return json;
  throw errorFromBody(json) ?? notTheApi();
}

function parseJson(text: string, contentType: string): unknown {
  if (!/^application\/json\b/i.test(contentType)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
