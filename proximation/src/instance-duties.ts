/**
 * What happens once per instance, whatever the number of processes serving: the routing table is
 * watched (polled), so are the members' lease renewals (fleet/lease-watcher.ts), certificates are obtained, renewed and picked up from other instances, and the admin
 * listener answers /healthz, /metrics and the routing API. It is the only part that writes shared state.
 *
 * It serves nothing itself: `sink` is told of every routing table accepted and every certificate new to
 * this instance or gone from it, in order; in a single process the sink is the serving side, in a
 * cluster the primary, which passes them to its workers. `certificateFor` answers a serving side's
 * question about a name it holds no certificate for yet (see SniContexts).
 *
 * /healthz answers 503 `no-routing-table` (with the reason) while the watcher has no valid table yet,
 * whatever `health` says, except while draining. While the shared storage does not answer the
 * watcher's reads (Redis unreachable), the instance keeps serving the table it has from memory, so
 * /healthz keeps its status (200 when ok: replacing a serving instance would not bring the storage
 * back) and adds `"storage": "unreachable"`; the metric `proximation_storage_up` is 0 meanwhile, and the
 * watcher logs the outage once and its end once; the next read after it catches up.
 *
 * `open` loads the first routing table (the sink has it before `open` resolves) and opens the issuer;
 * `listenAdmin` then opens the admin listener (ERR_LISTEN when it cannot); `start`, to be called once
 * the listeners serve, hands the routed hosts to the certificate side and starts its checks: a CA
 * validating an order must reach a listener (with workers, they listen a second or so after the table
 * is loaded), so nothing is loaded or ordered before. `stopWatching` stops the routing-table polling (a drain); `close` stops the rest.
 */
import net, { type AddressInfo } from 'node:net';
import { certificateNames, errorMessage, emptyRoutingTable, fleetStorageOf, type CertificateState, type MemberRenewal, type RoutingTable, type SiteChallenge, type Storage, type UpstreamTraffic } from '@proximation/shared';
import { instanceId, startHeartbeat, type Heartbeat } from './fleet/heartbeat.js';
import { adminAuthorizer } from './admin/admin-auth.js';
import { AdminServer, type Health } from './admin/admin-server.js';
import { MetricsHistory } from './admin/metrics-history.js';
import { RoutingApi } from './admin/routing-api.js';
import { statusApi } from './admin/status-api.js';
import { overviewHandler } from './admin/status-overview.js';
import { StatusPage } from './admin/status-page.js';
import type { LoadedCertificate } from './certs/cert-store.js';
import { CertStore } from './certs/cert-store.js';
import { CertificateManager } from './certs/certificate-manager.js';
import { ChallengeStore } from './certs/challenge-store.js';
import { openIssuer } from './certs/open-issuer.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import type { RenewalResult } from './metrics.js';
import { OwnListeners } from './own-listeners.js';
import { RoutesWatcher } from './routes-watcher.js';
import { openStateStorage, routesLocation, syncCertbotCopy } from './state-storage.js';
import { LeaseWatcher } from './fleet/lease-watcher.js';
import type { UnavailableUpstream } from './proxy/upstreams.js';

export interface InstanceSink {
  table(table: RoutingTable): void;
  /** The members' lease renewals, each time one is seen to change (members.ts). */
  renewals(renewals: Map<string, MemberRenewal>): void;
  certificate(host: string, cert: LoadedCertificate): void;
  certificateRemoved(host: string): void;
}

export interface InstanceDutiesOptions {
  sink: InstanceSink;
  health: () => Health;
  metrics: { readonly contentType: string; exposition(): Promise<string>; storageSource(reachable: () => boolean): void };
  onOrder: (result: RenewalResult) => void;
  /** What the serving processes report, for the heartbeat and the status page. */
  serving: () => Promise<ServingReport>;
}

export interface ServingReport {
  /** The lowest generation the serving processes have applied. */
  routesGeneration: number;
  /** Processes serving now. */
  workers: number;
  /** Summed over the processes. */
  traffic: UpstreamTraffic[];
  /** Resident memory of every process of the instance (the primary included), summed. */
  rssBytes: number;
  /** Upstreams out of rotation in at least one serving process. */
  unavailable: UnavailableUpstream[];
}

export interface InstanceDuties {
  readonly issuerName: string;
  /** The routing table accepted last. */
  readonly table: RoutingTable | undefined;
  /**
   * The certificate a handshake for `name` is served: the name's own, or its wildcard's (`name` is then
   * the wildcard); undefined for names no site routes.
   */
  certificateFor(name: string): Promise<{ name: string; cert: LoadedCertificate } | undefined>;
  listenAdmin(): Promise<AddressInfo>;
  /** A port the serving side listens on (an ephemeral one): tables pointing an upstream at it are refused. */
  addOwnListener(port: number): void;
  /** The generation served changed (a worker applied a table): the heartbeat says so now, not a period later. */
  servingChanged(): void;
  start(): void;
  stopWatching(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Every name the table needs a certificate for (the sites' hosts, wildcards as `*.example.com`, and
 * `*.<preview domain>`), with the ACME challenge of the sites that chose one; certificates are only
 * ever obtained for these.
 */
function certificateHosts(table: RoutingTable): { hosts: string[]; challenges: Map<string, SiteChallenge> } {
  const hosts = new Set<string>();
  const challenges = new Map<string, SiteChallenge>();
  for (const site of table.sites) {
    for (const host of certificateNames(site)) {
      hosts.add(host);
      if (site.challenge !== undefined) challenges.set(host, site.challenge);
    }
  }
  return { hosts: [...hosts], challenges };
}

function isLoopback(address: string): boolean {
  return net.isIPv4(address) ? address.startsWith('127.') : address === '::1';
}

export async function openInstanceDuties(config: Config, log: Logger, options: InstanceDutiesOptions): Promise<InstanceDuties> {
  const storage = await openStateStorage(config, log.child({ part: 'storage' }));
  try {
    return await openWithStorage(config, log, options, storage);
  } catch (err) {
    await storage.close();
    throw err;
  }
}

async function openWithStorage(config: Config, log: Logger, options: InstanceDutiesOptions, storage: Storage): Promise<InstanceDuties> {
  const store = new CertStore(config.letsencryptDir, storage);
  const challenges = new ChallengeStore(config.letsencryptDir, storage);
  const certsLog = log.child({ part: 'certs' });
  const issuer = await openIssuer(config, { store, challenges, log: certsLog });
  const { sink } = options;
  /** Certificates held, by name, for the heartbeat's certificate states. */
  const held = new Map<string, Date>();
  let heartbeat: Heartbeat | undefined;
  const certs = new CertificateManager({
    store,
    issuer,
    pollMs: config.certPollMs,
    log: certsLog,
    onCertificate: (host, cert) => {
      held.set(host, cert.notAfter);
      sink.certificate(host, cert);
      // Whoever stored it, this instance's certbot copy gets it too.
      syncCertbotCopy(storage, cert.lineage).catch((err: unknown) =>
        certsLog.error({ host, err: errorMessage(err) }, 'could not update the certbot copy; the next new certificate retries'),
      );
    },
    onRemoved: (host) => {
      held.delete(host);
      sink.certificateRemoved(host);
    },
    onOrder: (_host, result) => options.onOrder(result),
  });
  let started = false;
  let wanted = certificateHosts(emptyRoutingTable());
  const ownListeners = new OwnListeners([config.httpsPort, config.httpPort, config.adminPort]);
  const routes = routesLocation(config, storage);
  const watcher = new RoutesWatcher(
    routes.storage,
    routes.key,
    config.routesPollMs,
    log.child({ part: 'routes' }),
    (table) => {
      sink.table(table);
      heartbeat?.beat();
      wanted = certificateHosts(table);
      if (started) certs.setHosts(wanted.hosts, wanted.challenges);
    },
    ownListeners.check,
  );
  await watcher.start();
  options.metrics.storageSource(() => !watcher.storageUnavailable);
  const fleet = fleetStorageOf(routes);
  const leases = new LeaseWatcher(fleet, config.routesPollMs, log.child({ part: 'leases' }), (renewals) => sink.renewals(renewals));
  await leases.start();
  const history = new MetricsHistory({ exposition: () => options.metrics.exposition() });
  let adminAddress: AddressInfo | undefined;
  const admin = new AdminServer({
    port: config.adminPort,
    host: config.adminAddress,
    // A proxy without a valid table serves nothing: /healthz says so, in every process layout.
    health: () => {
      const health = options.health();
      const problem = watcher.problem;
      const storage = watcher.storageUnavailable ? { storage: 'unreachable' as const } : {};
      return problem === undefined || health.status === 'draining' ? { ...health, ...storage } : { ...health, ...storage, status: 'no-routing-table', reason: problem };
    },
    authorize: adminAuthorizer(config.adminToken),
    routingApi: new RoutingApi({
      routes,
      fleet,
      lastGood: () => watcher.lastGood,
      afterChange: () => watcher.poll(),
      check: ownListeners.check,
      issuancePolicy: { issuer: config.issuer, challenge: config.acmeChallenge },
      log: log.child({ part: 'admin' }),
    }),
    statusApi: statusApi(routes, fleet, log.child({ part: 'admin' })),
    metrics: options.metrics,
    metricsNeedToken: config.metricsAuth === 'on' || (config.metricsAuth === 'auto' && config.adminToken !== undefined && !isLoopback(config.adminAddress)),
    statusPage: new StatusPage(),
    overview: overviewHandler({
      routes,
      certificates: store,
      table: () => watcher.table,
      health: options.health,
      history,
      addresses: () => (adminAddress === undefined ? [] : [`${adminAddress.address}:${adminAddress.port}`]),
      fleet,
      instanceId: () => heartbeat?.id,
      serving: options.serving,
      log: log.child({ part: 'admin' }),
    }),
  });
  let adminOpen = false;
  return {
    issuerName: issuer.name,
    get table() {
      return watcher.table;
    },
    async certificateFor(name) {
      const host = certs.servingHost(name);
      const cert = host === undefined ? undefined : await certs.certificateFor(host);
      return host === undefined || cert === undefined ? undefined : { name: host, cert };
    },
    async listenAdmin() {
      const address = await admin.listen();
      adminAddress = address;
      adminOpen = true;
      ownListeners.add(address.port);
      return address;
    },
    addOwnListener: (port) => ownListeners.add(port),
    servingChanged: () => heartbeat?.beat(),
    start() {
      started = true;
      void instanceId(process.env, log.child({ part: 'fleet' })).then((id) => {
        heartbeat = startHeartbeat({
          storage: fleet,
          id,
          // Five routing-table polls (5 s by default): a generation change is written at once anyway.
          periodMs: 5 * config.routesPollMs,
          log: log.child({ part: 'fleet' }),
          state: async () => {
            const certificates: CertificateState[] = wanted.hosts.map((name) => {
              const notAfter = held.get(name);
              return notAfter === undefined ? { name, notAfter: null, state: 'missing' } : { name, notAfter: notAfter.toISOString(), state: 'valid' };
            });
            const { routesGeneration, workers, traffic, rssBytes } = await options.serving();
            return { routesGeneration, workers, traffic, rssBytes, ...history.latestRates(), certificates };
          },
        });
      });
      certs.setHosts(wanted.hosts, wanted.challenges);
      certs.start();
      history.start();
    },
    async stopWatching() {
      await watcher.stop();
      leases.stop();
    },
    async close() {
      history.stop();
      await watcher.stop();
      leases.stop();
      await heartbeat?.stop();
      await certs.stop();
      if (adminOpen) await admin.close();
      await storage.close();
    },
  };
}
