/**
 * Requests and WebSockets in flight per site, version and upstream, and each upstream's last request,
 * for the instance's heartbeat (fleet/heartbeat.ts): what `deploy` waits on before a member may stop.
 * `request` and `websocket` count one up and return the function that counts it down (call it once,
 * when the exchange or tunnel ends); `snapshot` lists every upstream with something in flight or a
 * request seen. Memory only, O(1) per exchange; entries with nothing in flight are dropped after
 * FORGET_MS so that departed upstreams do not accumulate.
 */
import type { UpstreamTraffic } from '@proximation/shared';

const FORGET_MS = 10 * 60_000;

interface Entry {
  site: string;
  version: string;
  upstream: string;
  inFlight: number;
  websockets: number;
  lastRequestAt: number;
}

export class InFlight {
  private readonly entries = new Map<string, Entry>();

  request(site: string, version: string, upstream: string): () => void {
    const entry = this.entry(site, version, upstream);
    entry.inFlight++;
    return once(() => entry.inFlight--);
  }

  websocket(site: string, version: string, upstream: string): () => void {
    const entry = this.entry(site, version, upstream);
    entry.websockets++;
    return once(() => entry.websockets--);
  }

  snapshot(now = Date.now()): UpstreamTraffic[] {
    const out: UpstreamTraffic[] = [];
    for (const [key, e] of this.entries) {
      if (e.inFlight === 0 && e.websockets === 0 && now - e.lastRequestAt > FORGET_MS) {
        this.entries.delete(key);
        continue;
      }
      out.push({ site: e.site, version: e.version, upstream: e.upstream, inFlight: e.inFlight, websockets: e.websockets, lastRequestAt: new Date(e.lastRequestAt).toISOString() });
    }
    return out;
  }

  private entry(site: string, version: string, upstream: string): Entry {
    const key = `${site}\u0000${version}\u0000${upstream}`;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { site, version, upstream, inFlight: 0, websockets: 0, lastRequestAt: 0 };
      this.entries.set(key, entry);
    }
    entry.lastRequestAt = Date.now();
    return entry;
  }
}

function once(done: () => void): () => void {
  let called = false;
  return () => {
    if (!called) {
      called = true;
      done();
    }
  };
}
