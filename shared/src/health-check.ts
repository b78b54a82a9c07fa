/**
 * Health checks of upstreams before they get traffic: `GET <upstream><path>` on every upstream at once,
 * each retried every `intervalMs` until it answers 2xx or 3xx (redirects are not followed) or
 * `timeoutMs` has passed since the check began. Each attempt may take up to 5 s (at least 1 s, so a
 * check with a tiny timeout still makes one real attempt); https and h2 upstreams are verified against
 * the system CAs plus NODE_EXTRA_CA_CERTS. h2c and h2 upstreams are checked over HTTP/2 (node:http2, one
 * session per attempt), the others over HTTP/1.1 (fetch): each upstream in the protocol it gets traffic in.
 *
 * `checkUpstreams` never throws: it resolves with one result per upstream, in the order given; its
 * `onAttempt` (for progress; it must not throw) sees each attempt's result as it comes.
 * `healthCheckFailed` makes the ProximationError ERR_HEALTH_CHECK_FAILED for results with failures
 * (a HealthCheckFailedError, which keeps the results so that whoever reports the failure, such as deploy
 * after the proxy's admin API ran the check, can word it for its reader), naming each failed upstream
 * and what it answered. `isHealthCheckPath` is the rule for `path`.
 */
import { STATUS_CODES } from 'node:http';
import http2 from 'node:http2';
import { setTimeout as delay } from 'node:timers/promises';
import { formatDuration } from './duration.js';
import { ProximationError } from './errors.js';
import { describeFetchFailure } from './fetch-failure.js';
import { upstreamEndpoint } from './upstream-origin.js';

export interface HealthCheckOptions {
  /** Request path, starting with "/", such as "/healthz". */
  readonly path: string;
  readonly timeoutMs: number;
  /** Pause between attempts on one upstream; default 250 ms. */
  readonly intervalMs?: number;
  /** Who checks, for the upstreams' logs; default "proximation health check". */
  readonly userAgent?: string;
  /** Ends the check early (the upstream's process died): each upstream's result is then its latest attempt's. */
  readonly signal?: AbortSignal;
}

export interface UpstreamHealth {
  readonly upstream: string;
  readonly healthy: boolean;
  readonly attempts: number;
  /** What the last attempt got, such as "answered 200 OK" or "refused the connection (ECONNREFUSED)". */
  readonly outcome: string;
}

/**
 * A path starting with a single "/" (a query is allowed): control characters, spaces and fragments
 * cannot be sent as a request target, and "//x" would be read as a host.
 */
export function isHealthCheckPath(path: string): boolean {
  return path.startsWith('/') && !path.startsWith('//') && !/[\s\u0000-\u001f\u007f#]/.test(path);
}

const MAX_ATTEMPT_MS = 5_000;
const MIN_ATTEMPT_MS = 1_000;
const DEFAULT_INTERVAL_MS = 250;

export function checkUpstreams(
  upstreams: readonly string[],
  options: HealthCheckOptions,
  onAttempt?: (result: UpstreamHealth) => void,
): Promise<UpstreamHealth[]> {
  const deadline = Date.now() + options.timeoutMs;
  return Promise.all(upstreams.map((upstream) => checkUntilHealthy(upstream, options, deadline, onAttempt)));
}

async function checkUntilHealthy(
  upstream: string,
  options: HealthCheckOptions,
  deadline: number,
  onAttempt: ((result: UpstreamHealth) => void) | undefined,
): Promise<UpstreamHealth> {
  const interval = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const probe = upstreamEndpoint(upstream).http2 ? probeHttp2 : probeHttp1;
  for (let attempts = 1; ; attempts++) {
    const { healthy, outcome } = await probe(upstream, Math.min(MAX_ATTEMPT_MS, Math.max(MIN_ATTEMPT_MS, deadline - Date.now())), options);
    onAttempt?.({ upstream, healthy, attempts, outcome });
    if (healthy || Date.now() + interval >= deadline || options.signal?.aborted === true) return { upstream, healthy, attempts, outcome };
    await delay(interval, undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(() => undefined);
  }
}

interface ProbeResult {
  healthy: boolean;
  outcome: string;
}

const DEFAULT_USER_AGENT = 'proximation health check';

function answered(status: number, statusText = STATUS_CODES[status] ?? ''): ProbeResult {
  return { healthy: status >= 200 && status < 400, outcome: `answered ${status}${statusText === '' ? '' : ` ${statusText}`}` };
}

async function probeHttp1(upstream: string, timeoutMs: number, options: HealthCheckOptions): Promise<ProbeResult> {
  try {
    const timeout = AbortSignal.timeout(timeoutMs);
    // Upstreams are stored as origins without a trailing slash, and the path starts with one.
    const response = await fetch(`${upstream}${options.path}`, {
      redirect: 'manual',
      signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]),
      headers: { 'user-agent': options.userAgent ?? DEFAULT_USER_AGENT },
    });
    await response.body?.cancel();
    return answered(response.status, response.statusText);
  } catch (err) {
    return { healthy: false, outcome: describeFetchFailure(err, timeoutMs) };
  }
}

/** HTTP/2 has no reason phrases: the outcome names the status as HTTP/1.1 would. */
function probeHttp2(upstream: string, timeoutMs: number, options: HealthCheckOptions): Promise<ProbeResult> {
  const endpoint = upstreamEndpoint(upstream);
  return new Promise((resolve) => {
    const session = http2.connect(`${endpoint.tls ? 'https' : 'http'}://${endpoint.authority}`);
    const finish = (result: ProbeResult): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', aborted);
      session.destroy();
      resolve(result);
    };
    const failed = (err: unknown): void => finish({ healthy: false, outcome: describeFetchFailure(err, timeoutMs) });
    const timer = setTimeout(() => failed(new DOMException('timed out', 'TimeoutError')), timeoutMs);
    const aborted = (): void => failed(options.signal?.reason);
    options.signal?.addEventListener('abort', aborted, { once: true });
    session.on('error', failed);
    const stream = session.request({ ':path': options.path, 'user-agent': options.userAgent ?? DEFAULT_USER_AGENT }, { endStream: true });
    stream.on('response', (headers) => finish(answered(Number(headers[':status']))));
    stream.on('error', failed);
  });
}

export class HealthCheckFailedError extends ProximationError {
  constructor(
    message: string,
    /** Every upstream checked, healthy or not. */
    readonly results: readonly UpstreamHealth[],
  ) {
    super('ERR_HEALTH_CHECK_FAILED', message);
  }
}

/**
 * "<lead>: 1 of 2 upstreams did not pass the health check (...):", a line per failed upstream with what
 * it answered, then `after` (what state things are in and what to do).
 */
export function healthCheckFailed(lead: string, results: readonly UpstreamHealth[], options: HealthCheckOptions, after: string): HealthCheckFailedError {
  const failed = results.filter((r) => !r.healthy);
  const lines = failed.map((r) => `  ${r.upstream}: GET ${options.path} ${r.outcome} (${r.attempts} ${r.attempts === 1 ? 'attempt' : 'attempts'})`);
  const which = results.length === 1 ? 'the upstream' : failed.length === results.length ? `all ${results.length} upstreams` : `${failed.length} of ${results.length} upstreams`;
  return new HealthCheckFailedError(
    `${lead}: ${which} did not pass the health check ` +
      `(GET ${options.path} answering 2xx or 3xx within ${formatDuration(options.timeoutMs)}):\n${lines.join('\n')}\n${after}`,
    results,
  );
}
