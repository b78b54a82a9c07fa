/**
 * This instance's heartbeat: its record in the fleet storage (InstanceRecord, fleet-storage.ts in
 * shared), written by the one process that writes shared state (the primary, or the single process)
 * every `periodMs` and at once when `beat()` is called (a new routing table served), so `deploy` sees a
 * generation change without waiting a period. Readers drop a record that was not rewritten for three
 * periods; `stop()` deletes it (a clean shutdown leaves the fleet at once). The id is the ECS task ARN
 * (from ECS_CONTAINER_METADATA_URI_V4, looked up once) when it runs on ECS, else host:pid. A failed
 * write is logged (once per outage, outage-log.ts) and retried at the next beat; writes never overlap.
 */
import { hostname, networkInterfaces } from 'node:os';
import { errorMessage, type CertificateState, type FleetStorage, type InstanceRecord, type UpstreamTraffic } from '@proximation/shared';
import type { Logger } from '../logger.js';
import { outageLog } from '../outage-log.js';
import { pollEvery } from '../poll-loop.js';

export interface InstanceState {
  routesGeneration: number;
  workers: number;
  traffic: UpstreamTraffic[];
  certificates: CertificateState[];
  requestsPerSecond?: number;
  errorsPerSecond?: number;
  rssBytes?: number;
}

export interface Heartbeat {
  readonly id: string;
  beat(): void;
  stop(): Promise<void>;
}

const METADATA_TIMEOUT_MS = 2_000;

/** The ECS task ARN when the metadata endpoint is there, else host:pid. */
export async function instanceId(env: NodeJS.ProcessEnv, log: Logger): Promise<string> {
  const fallback = `${hostname()}:${process.pid}`;
  const uri = env.ECS_CONTAINER_METADATA_URI_V4;
  if (uri === undefined || uri === '') return fallback;
  try {
    const response = await fetch(`${uri.replace(/\/+$/, '')}/task`, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) });
    const arn = ((await response.json()) as { TaskARN?: unknown }).TaskARN;
    if (typeof arn === 'string' && arn !== '') return arn;
    log.warn({ uri }, `the ECS task metadata has no TaskARN; this instance is ${fallback} in the fleet`);
  } catch (err) {
    log.warn({ uri, err: errorMessage(err) }, `reading the ECS task metadata failed; this instance is ${fallback} in the fleet`);
  }
  return fallback;
}

function ownAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const external = all.filter((a) => !a.internal);
  return (external.length > 0 ? external : all).map((a) => a.address);
}

export function startHeartbeat(options: {
  storage: FleetStorage;
  id: string;
  periodMs: number;
  log: Logger;
  state: () => Promise<InstanceState>;
}): Heartbeat {
  const startedAt = new Date().toISOString();
  let writing: Promise<void> = Promise.resolve();
  let stopped = false;
  const failures = outageLog(options.log, 'writing the heartbeat failed; retrying at the next one', 'heartbeat written again');
  const write = (): Promise<void> => {
    writing = writing.then(async () => {
      if (stopped) return;
      try {
        const state = await options.state();
        const record: InstanceRecord = {
          id: options.id,
          host: hostname(),
          pid: process.pid,
          addresses: ownAddresses(),
          startedAt,
          writtenAt: new Date().toISOString(),
          periodMs: options.periodMs,
          ...state,
        };
        if (!stopped) await options.storage.putInstance(record);
        failures.succeeded();
      } catch (err) {
        failures.failed(err);
      }
    });
    return writing;
  };
  void write();
  const loop = pollEvery(options.periodMs, write);
  return {
    id: options.id,
    beat: () => void write(),
    async stop() {
      loop.stop();
      await writing;
      stopped = true;
      await options.storage.removeInstance(options.id).catch((err: unknown) => options.log.warn({ err: errorMessage(err) }, 'removing the heartbeat failed'));
    },
  };
}
