/**
 * What a deploy command is waiting for, shown on stderr while it waits, so a health check of up to
 * --health-timeout, a lock held by another host or proxies yet to serve a change is never a silent pause:
 * - on a terminal, a status block rewritten in place at every event and every second: what is waited
 *   on, who holds the lock, elapsed of limit, and each upstream not yet healthy with its last answer;
 *   erased when the wait is over, so only the command's result stays;
 * - without a terminal (CI logs), one line every `progressIntervalMs` (default 5 s) while something is
 *   waited on, the first after one interval, so quick waits print nothing;
 * - with --json (the caller passes no output), nothing.
 *
 * A Progress is an UpdateObserver for RoutesTarget.update; `observe` wraps a target so that each update
 * reports to it and the display clears when the update settles. Nothing here throws.
 */
import type { Writable } from 'node:stream';
import { formatDuration } from '@proximation/shared';
import type { HealthCheckOptions, LockWait, UpstreamHealth } from '@proximation/shared';
import type { RoutesTarget, UpdateObserver } from './routes-target.js';

export interface ProgressOutput {
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
  /** Without a terminal: how often a line is printed while waiting; default 5000. */
  readonly progressIntervalMs?: number;
}

const DEFAULT_INTERVAL_MS = 5_000;
const TERMINAL_REFRESH_MS = 1_000;
/** Waiters poll a held lock every 50-250 ms: a wait not reported for longer than this is over. */
const LOCK_WAIT_STALE_MS = 1_000;

type Waiting =
  | { kind: 'lock'; since: number; seen: number; wait: LockWait }
  | { kind: 'health'; since: number; health: HealthCheckOptions; results: Map<string, UpstreamHealth | undefined> }
  | { kind: 'remote'; since: number; proxy: string; health: HealthCheckOptions }
  | { kind: 'converge'; since: number; generation: number; lagging: readonly string[]; timeoutMs: number };

export class Progress implements UpdateObserver {
  readonly #out: ProgressOutput;
  readonly #subject: string;
  readonly #terminal: boolean;
  #waiting: Waiting | undefined;
  #timer: NodeJS.Timeout | undefined;
  #drawnLines = 0;

  /** `subject` names what is being deployed, such as "dev/devbuild-42". */
  constructor(out: ProgressOutput, subject: string) {
    this.#out = out;
    this.#subject = subject;
    this.#terminal = out.stderr.isTTY === true;
  }

  lockWait(wait: LockWait): void {
    const now = Date.now();
    const since = this.#waiting?.kind === 'lock' && this.#waiting.wait.path === wait.path ? this.#waiting.since : now - wait.waitedMs;
    this.#set({ kind: 'lock', since, seen: now, wait });
  }

  healthCheckStarted(upstreams: readonly string[], health: HealthCheckOptions): void {
    this.#set({ kind: 'health', since: Date.now(), health, results: new Map(upstreams.map((u) => [u, undefined])) });
  }

  healthAttempt(result: UpstreamHealth): void {
    if (this.#waiting?.kind !== 'health') return;
    this.#waiting.results.set(result.upstream, result);
    if (this.#terminal) this.#draw();
  }

  remoteCheck(proxy: string, health: HealthCheckOptions): void {
    this.#set({ kind: 'remote', since: Date.now(), proxy, health });
  }

  /** The proxy instances `lagging` do not serve `generation` yet (convergence.ts). */
  converging(generation: number, lagging: readonly string[], timeoutMs: number): void {
    const since = this.#waiting?.kind === 'converge' ? this.#waiting.since : Date.now();
    this.#set({ kind: 'converge', since, generation, lagging, timeoutMs });
  }

  /** The wait is over (the update settled): stop and erase the display. */
  clear(): void {
    this.#waiting = undefined;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#erase();
  }

  #set(waiting: Waiting): void {
    this.#waiting = waiting;
    this.#timer ??= setInterval(() => this.#tick(), this.#terminal ? TERMINAL_REFRESH_MS : (this.#out.progressIntervalMs ?? DEFAULT_INTERVAL_MS)).unref();
    if (this.#terminal) this.#draw();
  }

  #tick(): void {
    if (this.#terminal) this.#draw();
    else {
      const lines = this.#lines();
      if (lines.length > 0) this.#out.stderr.write(`deploy: ${lines.map((l) => l.trim()).join('; ')}\n`);
    }
  }

  #lines(): string[] {
    const w = this.#waiting;
    if (w === undefined) return [];
    const now = Date.now();
    const seconds = Math.floor((now - w.since) / 1000);
    const elapsed = (limitMs: number) => `${seconds === 0 ? '0s' : formatDuration(seconds * 1000)} of ${formatDuration(limitMs)}`;
    switch (w.kind) {
      case 'lock':
        if (now - w.seen > LOCK_WAIT_STALE_MS) return [];
        return [`waiting for the routing table's lock ${w.wait.path}, held by ${w.wait.holder}: ${elapsed(w.wait.timeoutMs)}`];
      case 'remote':
        return [`waiting for the proxy ${w.proxy} to health-check ${this.#subject} (GET ${w.health.path}): ${elapsed(w.health.timeoutMs)}`];
      case 'converge':
        return [`waiting for ${w.lagging.length === 1 ? 'a proxy instance' : `${w.lagging.length} proxy instances`} to serve routing table generation ${w.generation}: ${elapsed(w.timeoutMs)}; ${w.lagging.join(', ')}`];
      case 'health': {
        const results = [...w.results];
        const healthy = results.filter(([, r]) => r?.healthy === true).length;
        if (healthy === results.length) return [];
        const noun = results.length === 1 ? 'upstream' : 'upstreams';
        return [
          `health check of ${this.#subject} (GET ${w.health.path}): ${elapsed(w.health.timeoutMs)}, ${healthy} of ${results.length} ${noun} healthy`,
          ...results
            .filter(([, r]) => r?.healthy !== true)
            .map(([upstream, r]) => `  ${upstream}: ${r === undefined ? 'no answer yet' : `${r.outcome} (attempt ${r.attempts})`}`),
        ];
      }
    }
  }

  #draw(): void {
    const width = this.#out.stderr.columns;
    // A line wider than the terminal wraps, and the block could no longer be erased line by line.
    const lines = this.#lines().map((l) => (width !== undefined && width > 1 && l.length >= width ? `${l.slice(0, width - 2)}…` : l));
    this.#erase();
    if (lines.length === 0) return;
    this.#out.stderr.write(lines.join('\n'));
    this.#drawnLines = lines.length;
  }

  #erase(): void {
    if (!this.#terminal || this.#drawnLines === 0) return;
    this.#out.stderr.write(`\r\x1b[2K${'\x1b[1A\x1b[2K'.repeat(this.#drawnLines - 1)}`);
    this.#drawnLines = 0;
  }
}

/** The progress display of a command about `subject`: none with --json or without an output. */
export function progressFor(out: ProgressOutput | undefined, json: boolean | undefined, subject: string): Progress | undefined {
  return out === undefined || json === true ? undefined : new Progress(out, subject);
}

/** `target` with every update reporting to `progress`, whose display clears once the update settles. */
export function observe(target: RoutesTarget, progress: Progress | undefined): RoutesTarget {
  if (progress === undefined) return target;
  return {
    ...target,
    update: async (request) => {
      try {
        return await target.update(request, progress);
      } finally {
        progress.clear();
      }
    },
  };
}
