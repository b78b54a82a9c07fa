/**
 * Wires one proximation process that does everything itself (`workers` = 1): the instance's duties
 * (routing table, certificates, admin listener; instance-duties.ts) feed the serving side (listeners,
 * router, SNI; serving.ts) directly. With more workers cluster/primary.ts and cluster/worker.ts split the
 * same two parts over processes. `close()` drains: health turns 503, listeners stop accepting,
 * in-flight requests and WebSockets get until the drain deadline, then everything left is cut.
 */
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { openInstanceDuties, type InstanceDuties } from './instance-duties.js';
import type { Logger } from './logger.js';
import { createServing } from './serving.js';

export interface RunningServer {
  http: AddressInfo;
  https: AddressInfo;
  admin: AddressInfo;
  /** Drains and stops; resolves when everything is closed. Safe to call more than once. */
  close(): Promise<void>;
  /** Rejects when the server can no longer serve by itself (workers that keep dying); never resolves. */
  failed: Promise<never>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  let duties: InstanceDuties | undefined;
  const serving = await createServing(config, log, {
    certificateFor: async (name) => {
      const found = await duties?.certificateFor(name);
      return found && { name: found.name, pair: found.cert };
    },
    reusePort: false,
    rotateTicketKeys: true,
  });
  let draining = false;
  const instance = await openInstanceDuties(config, log, {
    sink: {
      table: (table) => serving.applyTable(table),
      renewals: (renewals) => serving.applyRenewals(renewals),
      certificate: (host, cert) => serving.setCertificate(host, cert),
      certificateRemoved: (host) => serving.removeCertificate(host),
    },
    health: () => ({ status: draining ? 'draining' : 'ok', routesGeneration: serving.generation }),
    metrics: serving.metrics,
    onOrder: (result) => serving.metrics.renewal(result),
    serving: async () => ({ routesGeneration: serving.generation, workers: 1, traffic: serving.traffic(), rssBytes: process.memoryUsage.rss(), unavailable: serving.unavailable() }),
  });
  duties = instance;

  const serverLog = log.child({ part: 'server' });
  let addresses: Omit<RunningServer, 'close' | 'failed'>;
  try {
    const admin = await instance.listenAdmin();
    addresses = { admin, ...(await serving.listen()) };
    instance.addOwnListener(addresses.https.port);
    instance.addOwnListener(addresses.http.port);
  } catch (err) {
    await instance.close();
    throw err;
  }
  instance.start();
  serverLog.info(
    { https: addresses.https.port, http: addresses.http.port, admin: addresses.admin.port, adminApi: config.adminToken === undefined ? 'off' : 'on', routes: config.routesPath, issuer: instance.issuerName },
    'proximation is serving',
  );

  const close = async (): Promise<void> => {
    draining = true;
    const deadline = Date.now() + config.drainTimeoutMs;
    serverLog.info({ drainTimeoutMs: config.drainTimeoutMs, connections: serving.connections, websockets: serving.websockets }, 'draining');
    await instance.stopWatching();
    await serving.drain(deadline);
    await instance.close();
    serverLog.info('stopped');
  };
  let closing: Promise<void> | undefined;
  return { ...addresses, close: () => (closing ??= close()), failed: new Promise<never>(() => {}) };
}
