/**
 * Round-robin over one version's upstreams, skipping those out of rotation (passively ejected or failing
 * their active health check). When every upstream is out, the one that comes back soonest is tried
 * anyway: a request that might succeed beats a certain 502.
 */
import type { Upstream } from './upstreams.js';

export class RoundRobin {
  private next = 0;

  constructor(readonly upstreams: readonly Upstream[]) {}

  pick(now: number): Upstream {
    const list = this.upstreams;
    for (let i = 0; i < list.length; i++) {
      const candidate = list[(this.next + i) % list.length]!;
      if (candidate.available(now)) {
        this.next = (this.next + i + 1) % list.length;
        return candidate;
      }
    }
    let soonest = list[0]!;
    for (const u of list) if (u.ejectedUntilMs < soonest.ejectedUntilMs) soonest = u;
    return soonest;
  }

  /** An upstream not yet tried for this request, preferring those in rotation; undefined when none is left. */
  retry(tried: ReadonlySet<Upstream>, now: number): Upstream | undefined {
    let fallback: Upstream | undefined;
    for (const candidate of this.upstreams) {
      if (tried.has(candidate)) continue;
      if (candidate.available(now)) return candidate;
      fallback ??= candidate;
    }
    return fallback;
  }
}
