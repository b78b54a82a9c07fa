/**
 * Round-robin over one version's upstreams, skipping those passively ejected. When every upstream is
 * ejected the one that comes back soonest is tried anyway: a request that might succeed beats a certain 502.
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
}
