/**
 * The serving side of one process: the HTTP and HTTPS listeners with their client limits, the router, upstream pools and their
 * health checks, WebSocket tunnels, the SNI contexts and the request metrics. It writes no shared state
 * and reads only the ACME challenge tokens (from the storage PROXIMATION_STORAGE names, which it opens
 * and closes with its drain): routing tables and certificates are handed to it (`applyTable`, `setCertificate`), by
 * server.ts in a single process, by the primary's messages in a worker (cluster/worker.ts).
 *
 * `listen()` opens the HTTPS then the HTTP listener and, if either fails, closes what it opened and
 * throws the listener's ProximationError. `drain(deadline)`: listeners stop accepting, in-flight
 * requests and WebSockets (closed with 1001) get until `deadline`, then everything left is cut; it
 * resolves once all is closed. Call each once.
 */
import type { AddressInfo } from 'node:net';
import type { MemberRenewal, RoutingTable, UpstreamTraffic } from '@proximation/shared';
import { InFlight } from './proxy/in-flight.js';
import { adminAuthorizer } from './admin/admin-auth.js';
import { ChallengeStore } from './certs/challenge-store.js';
import { http01Responder } from './certs/http01-responder.js';
import type { Config } from './config.js';
import { H2StreamLimits } from './listeners/h2-stream-limits.js';
import { HttpListener } from './listeners/http-listener.js';
import { HttpsListener } from './listeners/https-listener.js';
import type { Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { ClientBuffers } from './proxy/client-buffers.js';
import { ClientLimits } from './proxy/client-limits.js';
import { HealthChecker } from './proxy/health-check.js';
import { ProxyHandler } from './proxy/proxy-handler.js';
import { Router } from './proxy/router.js';
import { Upstreams, type UnavailableUpstream } from './proxy/upstreams.js';
import { VersionDrain } from './proxy/version-drain.js';
import { WebSocketTunnels } from './proxy/websocket.js';
import { SniContexts, type CertificateKeyPair } from './tls/sni.js';
import { openStateStorage } from './state-storage.js';

export interface ServedCertificate extends CertificateKeyPair {
  notAfter: Date;
}

export interface ServingOptions {
  /**
   * Asked for a name the SNI contexts do not hold yet: the certificate and the name it is held under (the
   * name's wildcard for a name a wildcard host routes); undefined: not served (the handshake fails).
   */
  certificateFor(name: string): Promise<{ name: string; pair: ServedCertificate } | undefined>;
  /** Own SO_REUSEPORT sockets (workers on Node 22.12+). */
  reusePort: boolean;
  /** false: the caller installs session ticket keys with `setTicketKeys`. */
  rotateTicketKeys: boolean;
}

export interface Serving {
  readonly metrics: Metrics;
  /** Generation of the routing table in use (-1 before the first). */
  readonly generation: number;
  /** Whether the current table routes `host` (lower case, no port). */
  routes(host: string): boolean;
  readonly connections: number;
  readonly websockets: number;
  /** Requests and WebSockets in flight per site, version and upstream (proxy/in-flight.ts). */
  traffic(): UpstreamTraffic[];
  /** The upstreams this process's health checks or connect failures took out of rotation. */
  unavailable(): UnavailableUpstream[];
  applyTable(table: RoutingTable): void;
  /** The members' lease renewals seen now (members.ts): expired members leave the rotation by time. */
  applyRenewals(renewals: ReadonlyMap<string, MemberRenewal>): void;
  setCertificate(host: string, cert: ServedCertificate): void;
  removeCertificate(host: string): void;
  setTicketKeys(keys: Buffer): void;
  listen(): Promise<{ http: AddressInfo; https: AddressInfo }>;
  drain(deadline: number): Promise<void>;
}

export async function createServing(config: Config, log: Logger, options: ServingOptions): Promise<Serving> {
  // Challenges are answered whatever the issuer: certbot's manual hooks may place HTTP-01 tokens too.
  // Each serving process reads them from the shared storage itself (on Redis its own connection).
  const challengeStorage = await openStateStorage({ storage: config.storage, certbotCopyDir: undefined });
  const challenges = new ChallengeStore(config.letsencryptDir, challengeStorage);
  const certsLog = log.child({ part: 'certs' });
  const upstreams = new Upstreams({
    connectTimeoutMs: config.upstreamConnectTimeoutMs,
    timeoutMs: config.upstreamTimeoutMs,
    maxHeadBytes: config.maxResponseHeaderSize,
  });
  // The admin token opens restricted preview hosts (preview-access.ts).
  const router = new Router(upstreams, adminAuthorizer(config.adminToken));
  const health = new HealthChecker(
    upstreams,
    { intervalMs: config.healthIntervalMs, path: config.healthPath, timeoutMs: config.healthTimeoutMs },
    log.child({ part: 'health' }),
  );
  const tunnels = new WebSocketTunnels({ connectTimeoutMs: config.upstreamConnectTimeoutMs });
  const versionDrain = new VersionDrain(tunnels, config.websocketDrainMs, log.child({ part: 'proxy' }));
  // The gauges are read at scrape time, once the listeners below exist.
  const metrics = new Metrics({
    connections: (): number => https.connections,
    websockets: () => tunnels.size,
    clientBufferedBytes: (): number => buffers.bufferedBytes,
    routesGeneration: () => router.generation,
  });
  const buffers = new ClientBuffers({
    trustedProxies: config.trustedProxies,
    maxBufferedBytesPerConnection: config.maxBufferedBytesPerConnection,
    maxBufferedBytesPerAddress: config.maxBufferedBytesPerAddress,
    observer: metrics,
  });
  const sni = new SniContexts((name) => options.certificateFor(name));

  const inFlight = new InFlight();
  const proxy = new ProxyHandler({
    inFlight,
    router,
    tunnels,
    trustedProxies: config.trustedProxies,
    accessLog: config.accessLog ? log.child({ part: 'access' }) : undefined,
    metrics,
    certificateCovers: (servername, host) => sni.covers(servername, host),
    buffers,
  });
  const limits = {
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxHeaderSize: config.maxHeaderSize,
    maxConnections: config.maxConnections,
    reusePort: options.reusePort,
  };
  const clientLimits = new ClientLimits({
    trustedProxies: config.trustedProxies,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    maxRequestRatePerAddress: config.maxRequestRatePerAddress,
    maxUpstreamRequestsPerConnection: config.maxUpstreamRequestsPerConnection,
    maxUpstreamRequestsPerAddress: config.maxUpstreamRequestsPerAddress,
    observer: metrics,
  });
  const h2Limits = new H2StreamLimits({ maxHeaderListSize: config.maxHeaderSize, requestTimeoutMs: config.requestTimeoutMs, observer: metrics });
  // Its X.509 stack is loaded only where the challenge is configured.
  const tlsAlpn01 =
    config.issuer === 'acme' && config.acmeChallenge === 'tls-alpn-01'
      ? new (await import('./certs/tls-alpn01-responder.js')).TlsAlpn01Responder(challenges, certsLog)
      : undefined;
  const https = new HttpsListener({
    ...limits,
    port: config.httpsPort,
    host: config.listenAddress,
    SNICallback: sni.SNICallback,
    rotateTicketKeys: options.rotateTicketKeys,
    // Only then is each connection's ClientHello looked at (see HttpsListener).
    ...(tlsAlpn01 === undefined ? {} : { acmeTlsAlpn: (name: string) => tlsAlpn01.contextFor(name) }),
    handshakeTimeoutMs: config.tlsHandshakeTimeoutMs,
    onRequest: (req, res) => {
      if (h2Limits.admit(req, res)) clientLimits.admit(req, res, () => h2Limits.forward(req, res, proxy.onRequest));
    },
    onUpgrade: (req, socket, head) => {
      if (clientLimits.admitUpgrade(req, socket)) proxy.onUpgrade(req, socket, head);
    },
    onConnect: proxy.onConnect,
    onHeadersTimeout: () => metrics.limitHit('headers_timeout'),
    onExtendedConnect: (req, res) => {
      if (h2Limits.admitHeaders(req, res) && clientLimits.admitExtendedConnect(req, res)) proxy.onExtendedConnect(req, res);
    },
  });
  https.server.on('tlsClientError', (err: Error & { code?: string }) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') metrics.limitHit('tls_handshake_timeout');
  });
  const http = new HttpListener({
    ...limits,
    port: config.httpPort,
    host: config.listenAddress,
    publicHttpsPort: config.publicHttpsPort,
    isRouted: (host) => router.route(host) !== undefined,
    challenges: http01Responder(challenges, certsLog),
  });
  clientLimits.watchConnections(https.server);
  clientLimits.watchConnections(http.server);

  return {
    metrics,
    get generation() {
      return router.generation;
    },
    routes: (host) => router.route(host) !== undefined,
    get connections() {
      return https.connections;
    },
    get websockets() {
      return tunnels.size;
    },
    applyTable(table) {
      router.update(table);
      versionDrain.update(table);
    },
    applyRenewals: (renewals) => router.setRenewals(renewals),
    traffic: () => inFlight.snapshot(),
    unavailable: () => upstreams.unavailable(Date.now()),
    setCertificate(host, cert) {
      sni.set(host, cert);
      metrics.certificateServed(host, cert.notAfter);
    },
    removeCertificate(host) {
      sni.delete(host);
      metrics.certificateRemoved(host);
    },
    setTicketKeys(keys) {
      https.server.setTicketKeys(keys);
    },
    async listen() {
      let httpsAddress: AddressInfo | undefined;
      try {
        httpsAddress = await https.listen();
        const httpAddress = await http.listen();
        health.start();
        return { https: httpsAddress, http: httpAddress };
      } catch (err) {
        versionDrain.stop();
        if (httpsAddress !== undefined) await https.drain(Date.now());
        await upstreams.destroy();
        clientLimits.close();
        await challengeStorage.close();
        throw err;
      }
    },
    async drain(deadline) {
      versionDrain.stop();
      await Promise.all([
        https.drain(deadline),
        http.close(),
        tunnels.close({ code: 1001, reason: 'proxy shutting down', timeoutMs: Math.max(0, deadline - Date.now()) }),
      ]);
      await health.stop();
      await upstreams.destroy();
      clientLimits.close();
      await challengeStorage.close();
    },
  };
}
