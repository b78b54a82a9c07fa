/**
 * The proxy's own listeners as upstream targets: a version whose upstream is this proxy's HTTPS, HTTP or
 * admin port on the host itself would loop, or serve the admin API (`/metrics`, the routing API) to the
 * internet. `check` refuses such a table: the routes watcher keeps serving the last good one, the admin
 * API answers 400. There is no opt-in (no real service lives there).
 *
 * The host itself: loopback, unspecified, `localhost` and the addresses of this host's interfaces as
 * they were at start (an ECS task's ENI address does not change). Names that resolve to the host are not
 * looked up. `check` throws ProximationError ERR_RESTRICTED_UPSTREAM naming the version, the upstream and
 * its place in the table; ports added with `add` count from then on.
 */
import os from 'node:os';
import { ProximationError, ownListenerProblem, type RoutingTable } from '@proximation/shared';

export class OwnListeners {
  private readonly ports = new Set<number>();
  private readonly local = new Set<string>();

  constructor(ports: readonly number[]) {
    for (const port of ports) this.add(port);
    for (const addresses of Object.values(os.networkInterfaces())) for (const a of addresses ?? []) this.local.add(a.address);
  }

  /** A listening port (0, "any port", is never one). */
  add(port: number): void {
    if (port !== 0) this.ports.add(port);
  }

  readonly check = (table: RoutingTable): void => {
    table.sites.forEach((site, s) =>
      site.versions.forEach((version, v) =>
        version.upstreams.forEach((upstream, u) => {
          const problem = ownListenerProblem(upstream, this.ports, this.local);
          if (problem === undefined) return;
          throw new ProximationError(
            'ERR_RESTRICTED_UPSTREAM',
            `Version ${site.name}/${version.name} (sites[${s}].versions[${v}].upstreams[${u}]): ${problem}. Point it at the app's own address and port instead.`,
          );
        }),
      ),
    );
  };
}
