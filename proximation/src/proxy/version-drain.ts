/**
 * After a site switches versions, WebSockets already open to the old version stay open: they end when
 * their peers close them or, at the latest, `drainMs` after the switch, when they get a Close frame with
 * 1001 ("going away") so clients reconnect, and so reach the new version. A version that is active
 * again by then (a rollback) keeps its WebSockets.
 */
import type { RoutingTable } from '@proximation/shared';
import type { Logger } from '../logger.js';
import type { WebSocketTunnels } from './websocket.js';

export class VersionDrain {
  private active = new Map<string, string | null>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly tunnels: WebSocketTunnels,
    private readonly drainMs: number,
    private readonly log: Logger,
  ) {}

  update(table: RoutingTable): void {
    const next = new Map(table.sites.map((s) => [s.name, s.activeVersion]));
    for (const [site, previous] of this.active) {
      if (previous !== null && next.get(site) !== previous) this.schedule(site, previous);
    }
    this.active = next;
  }

  private schedule(site: string, version: string): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.active.get(site) === version) return;
      const where = (labels: Readonly<Record<string, string>>): boolean => labels.site === site && labels.version === version;
      this.log.info({ site, version }, 'closing WebSockets still open to the replaced version');
      void this.tunnels.close({ where, code: 1001, reason: 'version replaced', timeoutMs: 10_000 });
    }, this.drainMs);
    timer.unref();
    this.timers.add(timer);
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
