/**
 * Active health checks: every `intervalMs`, each upstream of an active version gets `GET path` through
 * its own pool (so a check also exercises the connections requests use, HTTP/1.1 or HTTP/2 alike). 2xx or 3xx within
 * `timeoutMs` passes. Two failures in a row take the upstream out of rotation; one pass brings it back.
 * Transitions are logged. Checks of one round run concurrently; a round never overlaps the next.
 */
import { upstreamEndpoint } from '@proximation/shared';
import type { Logger } from '../logger.js';
import type { Upstream, Upstreams } from './upstreams.js';

const FAILURES_TO_MARK_DOWN = 2;

export interface HealthCheckOptions {
  intervalMs: number;
  path: string;
  timeoutMs: number;
}

export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  constructor(
    private readonly upstreams: Upstreams,
    private readonly options: HealthCheckOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setTimeout(() => {
      this.round = this.checkAll().finally(() => {
        this.round = undefined;
        if (this.timer !== undefined) this.start();
      });
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.round;
  }

  async checkAll(): Promise<void> {
    await Promise.all([...this.upstreams.all()].map((u) => this.check(u)));
  }

  private async check(upstream: Upstream): Promise<void> {
    const problem = await this.probe(upstream);
    const change = upstream.reportHealthCheck(problem === undefined, FAILURES_TO_MARK_DOWN);
    if (change === 'down') this.log.warn({ upstream: upstream.origin, problem }, 'upstream failed its health checks; out of rotation');
    if (change === 'up') this.log.info({ upstream: upstream.origin }, 'upstream passed its health check; back in rotation');
  }

  /** undefined when healthy, else what went wrong. */
  private probe(upstream: Upstream): Promise<string | undefined> {
    const { path, timeoutMs } = this.options;
    return new Promise((resolve) => {
      let status = 0;
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      const control = upstream.pool.request(
        { method: 'GET', path, headers: ['host', upstreamEndpoint(upstream.origin).authority, 'user-agent', 'proximation-health-check'], body: null },
        {
          onHead: (code) => (status = code),
          onData: () => true,
          onEnd: () => {
            clearTimeout(timer);
            resolve(status >= 200 && status < 400 ? undefined : `GET ${path} answered ${status}`);
          },
          onError: (err) => {
            clearTimeout(timer);
            resolve(timedOut ? `GET ${path} got no answer within ${timeoutMs} ms` : `GET ${path} failed: ${err.message}`);
          },
        },
      );
      timer = setTimeout(() => {
        timedOut = true;
        control.abort();
      }, timeoutMs);
    });
  }
}
