/**
 * Round-robin over one version's upstreams, skipping those out of rotation (passively ejected or failing
 * their active health check). When every upstream is out, the one that comes back soonest is tried
 * anyway: a request that might succeed beats a certain 502.
 *
 * A leased member (members.ts in shared) whose lease has run out by `now` is never picked, not even as
 * that last resort: its address may belong to another task by then. `expiresAt[i]` is upstream i's
 * lease end (epoch ms; Infinity for a static upstream), updated in place as renewals are seen; `pick`
 * and `retry` answer undefined when every upstream's lease has run out.
 */
import type { Upstream } from './upstreams.js';

export class RoundRobin {
  private next = 0;

  constructor(
    readonly upstreams: readonly Upstream[],
    readonly expiresAt: number[] = upstreams.map(() => Number.POSITIVE_INFINITY),
  ) {}

  pick(now: number): Upstream | undefined {
    const list = this.upstreams;
    for (let i = 0; i < list.length; i++) {
      const at = (this.next + i) % list.length;
      const candidate = list[at]!;
      if (candidate.available(now) && this.expiresAt[at]! > now) {
        this.next = (at + 1) % list.length;
        return candidate;
      }
    }
    let soonest: Upstream | undefined;
    list.forEach((u, i) => {
      if (this.expiresAt[i]! > now && (soonest === undefined || u.ejectedUntilMs < soonest.ejectedUntilMs)) soonest = u;
    });
    return soonest;
  }

  /** An upstream not yet tried for this request, preferring those in rotation; undefined when none is left. */
  retry(tried: ReadonlySet<Upstream>, now: number): Upstream | undefined {
    let fallback: Upstream | undefined;
    for (const [i, candidate] of this.upstreams.entries()) {
      if (tried.has(candidate) || this.expiresAt[i]! <= now) continue;
      if (candidate.available(now)) return candidate;
      fallback ??= candidate;
    }
    return fallback;
  }
}
