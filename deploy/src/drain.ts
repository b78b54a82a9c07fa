/**
 * Waiting for traffic to end, as the proxies' heartbeats report it (fleet-storage.ts and
 * fleet-status.ts in shared): the loop `deploy wait-drained` and `deploy run` share, and what `run`
 * waits on for its own members once it has left the rotation.
 *
 * `waitUntilDrained` asks `open` every second (at once first) what is still open, as one phrase per
 * item; it resolves with the time waited once `open` answers nothing, and rejects with ERR_NOT_DRAINED
 * after `timeoutMs`, naming `what`, every open item and `hint` (what to do). `signal` ends the wait
 * early, as drained. Errors of `open` propagate.
 *
 * `membersStillOpen` is that question for members that have just left their version in the table
 * generation `leftIn`: an instance that still serves an older generation may still send them new
 * requests, so it counts as open until its heartbeat shows `leftIn` or later, and then until it shows
 * no request and no WebSocket in flight to them. Heartbeats are written at once when an instance loads
 * a table, so this normally takes one poll of the proxies plus the requests' own time. Instances whose
 * heartbeats have expired are not waited for.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, formatDuration, liveInstances, type FleetStorage } from '@proximation/shared';

const POLL_MS = 1_000;

export async function waitUntilDrained(options: {
  what: string;
  open: () => Promise<readonly string[]>;
  timeoutMs: number;
  hint: string;
  signal?: AbortSignal;
}): Promise<number> {
  const start = Date.now();
  for (;;) {
    const open = await options.open();
    if (open.length === 0 || options.signal?.aborted === true) return Date.now() - start;
    if (Date.now() - start >= options.timeoutMs) {
      throw new ProximationError('ERR_NOT_DRAINED', `${options.what} still has traffic after ${formatDuration(options.timeoutMs)}: ${open.join('; ')}. ${options.hint}`);
    }
    await delay(POLL_MS, undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(() => undefined);
  }
}

/** "<upstream> 2 request(s) and 1 WebSocket(s) in flight", the phrase both commands use. */
export function inFlightPhrase(upstream: string, inFlight: number, websockets: number): string {
  return `${upstream} ${inFlight} request(s) and ${websockets} WebSocket(s) in flight`;
}

/** What the live instances still have open to `upstreams` of site/version, which left it in generation `leftIn` (see the header). */
export async function membersStillOpen(fleet: FleetStorage, member: { site: string; version: string; upstreams: readonly string[] }, leftIn: number): Promise<string[]> {
  const live = liveInstances((await fleet.readInstances()).records, Date.now());
  return live.flatMap((instance) => {
    if (instance.routesGeneration < leftIn) return [`instance ${instance.id} still serves generation ${instance.routesGeneration} (left in ${leftIn})`];
    return instance.traffic
      .filter((t) => t.site === member.site && t.version === member.version && member.upstreams.includes(t.upstream) && t.inFlight + t.websockets > 0)
      .map((t) => `instance ${instance.id}: ${inFlightPhrase(t.upstream, t.inFlight, t.websockets)}`);
  });
}
