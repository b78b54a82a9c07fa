/**
 * Wires one proximation process together: routing table → router and certificates; certificates → SNI;
 * listeners → proxy handler. This is the only module that knows both the proxy side and the certificate
 * side. `close()` drains: health turns 503, listeners stop accepting, in-flight requests and WebSockets
 * get until the drain deadline, then everything left is cut.
 */
import net, { type AddressInfo } from 'node:net';
import { adminAuthorizer } from './admin/admin-auth.js';
import { AdminServer } from './admin/admin-server.js';
import { RoutingApi } from './admin/routing-api.js';
import { CertStore } from './certs/cert-store.js';
import { CertificateManager } from './certs/certificate-manager.js';
import { ChallengeStore, challengesDir } from './certs/challenge-store.js';
import { http01Responder } from './certs/http01-responder.js';
import { locksDirOf, openIssuer } from './certs/open-issuer.js';
import type { Config } from './config.js';
import { HttpListener } from './listeners/http-listener.js';
import { H2StreamLimits } from './listeners/h2-stream-limits.js';
import { HttpsListener } from './listeners/https-listener.js';
import type { Logger } from './logger.js';
import { OwnListeners } from './own-listeners.js';
import { Metrics } from './metrics.js';
import { ClientLimits } from './proxy/client-limits.js';
import { ProxyHandler } from './proxy/proxy-handler.js';
import { HealthChecker } from './proxy/health-check.js';
import { Router } from './proxy/router.js';
import { Upstreams } from './proxy/upstreams.js';
import { VersionDrain } from './proxy/version-drain.js';
import { WebSocketTunnels } from './proxy/websocket.js';
import { RoutesWatcher } from './routes-watcher.js';
import { SniContexts } from './tls/sni.js';

export interface RunningServer {
  http: AddressInfo;
  https: AddressInfo;
  admin: AddressInfo;
  /** Drains and stops; resolves when everything is closed. Safe to call more than once. */
  close(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const locksDir = locksDirOf(config.letsencryptDir);
  const store = new CertStore(config.letsencryptDir);
  // Challenges are answered whatever the issuer: certbot's manual hooks may place HTTP-01 tokens too.
  const challenges = new ChallengeStore(challengesDir(config.letsencryptDir));
  const certsLog = log.child({ part: 'certs' });
  const issuer = await openIssuer(config, { store, challenges, locksDir, log: certsLog });

  const upstreams = new Upstreams({ connectTimeoutMs: config.upstreamConnectTimeoutMs, timeoutMs: config.upstreamTimeoutMs });
  const router = new Router(upstreams, adminAuthorizer(config.adminToken));
  const health = new HealthChecker(
    upstreams,
    { intervalMs: config.healthIntervalMs, path: config.healthPath, timeoutMs: config.healthTimeoutMs },
    log.child({ part: 'health' }),
  );
  const tunnels = new WebSocketTunnels({ connectTimeoutMs: config.upstreamConnectTimeoutMs });
  const versionDrain = new VersionDrain(tunnels, config.websocketDrainMs, log.child({ part: 'proxy' }));
  // The gauges are read at scrape time, once the listeners below exist.
  const metrics = new Metrics({ connections: (): number => https.connections, websockets: () => tunnels.size, routesGeneration: () => router.generation });

  let certificates: CertificateManager | undefined;
  const sni = new SniContexts(async (name) => {
    const host = certificates?.servingHost(name);
    const cert = host === undefined ? undefined : await certificates?.certificateFor(host);
    return host === undefined || cert === undefined ? undefined : { name: host, pair: cert };
  });
  certificates = new CertificateManager({
    store,
    issuer,
    locksDir,
    pollMs: config.certPollMs,
    log: certsLog,
    onCertificate: (host, cert) => {
      sni.set(host, cert);
      metrics.certificateServed(host, cert.notAfter);
    },
    onRemoved: (host) => {
      sni.delete(host);
      metrics.certificateRemoved(host);
    },
    onOrder: (_host, result) => metrics.renewal(result),
  });
  const certs = certificates;

  const ownListeners = new OwnListeners([config.httpsPort, config.httpPort, config.adminPort]);
  const watcher = new RoutesWatcher(
    config.routesPath,
    config.routesPollMs,
    log.child({ part: 'routes' }),
    (table) => {
      router.update(table);
      versionDrain.update(table);
      certs.setHosts(router.hosts, router.hostChallenges);
    },
    ownListeners.check,
  );
  await watcher.start();

  const proxy = new ProxyHandler({
    router,
    tunnels,
    trustedProxies: config.trustedProxies,
    accessLog: config.accessLog ? log.child({ part: 'access' }) : undefined,
    metrics,
  });
  const limits = {
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxHeaderSize: config.maxHeaderSize,
    maxConnections: config.maxConnections,
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
    // Only then is each connection's ClientHello looked at (see HttpsListener).
    ...(tlsAlpn01 === undefined ? {} : { acmeTlsAlpn: (name: string) => tlsAlpn01.contextFor(name) }),
    handshakeTimeoutMs: config.tlsHandshakeTimeoutMs,
    onRequest: (req, res) => {
      if (h2Limits.admit(req, res)) clientLimits.admit(req, res, () => h2Limits.forward(req, res, proxy.onRequest));
    },
    onUpgrade: (req, socket, head) => {
      if (clientLimits.admitUpgrade(req, socket)) proxy.onUpgrade(req, socket, head);
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
  let draining = false;
  const admin = new AdminServer({
    port: config.adminPort,
    host: config.adminAddress,
    health: () => ({ status: draining ? 'draining' : 'ok', routesGeneration: router.generation }),
    authorize: adminAuthorizer(config.adminToken),
    routingApi: new RoutingApi({
      routesPath: config.routesPath,
      afterChange: () => watcher.poll(),
      check: ownListeners.check,
      issuancePolicy: { issuer: config.issuer, challenge: config.acmeChallenge },
      log: log.child({ part: 'admin' }),
    }),
    metrics,
    metricsNeedToken: config.metricsAuth === 'on' || (config.metricsAuth === 'auto' && config.adminToken !== undefined && !isLoopback(config.adminAddress)),
  });

  const serverLog = log.child({ part: 'server' });
  const opened: (() => Promise<void>)[] = [];
  let addresses: Omit<RunningServer, 'close'>;
  try {
    const adminAddress = await admin.listen();
    opened.push(() => admin.close());
    const httpsAddress = await https.listen();
    opened.push(() => https.drain(Date.now()));
    const httpAddress = await http.listen();
    addresses = { admin: adminAddress, https: httpsAddress, http: httpAddress };
    for (const address of [adminAddress, httpsAddress, httpAddress]) ownListeners.add(address.port);
  } catch (err) {
    await watcher.stop();
    versionDrain.stop();
    await Promise.all(opened.map((close) => close()));
    await upstreams.destroy();
    clientLimits.close();
    throw err;
  }
  certs.start();
  health.start();
  serverLog.info(
    { https: addresses.https.port, http: addresses.http.port, admin: addresses.admin.port, adminApi: config.adminToken === undefined ? 'off' : 'on', routes: config.routesPath, issuer: issuer.name },
    'proximation is serving',
  );

  const close = async (): Promise<void> => {
    draining = true;
    const deadline = Date.now() + config.drainTimeoutMs;
    serverLog.info({ drainTimeoutMs: config.drainTimeoutMs, connections: https.connections, websockets: tunnels.size }, 'draining');
    await watcher.stop();
    versionDrain.stop();
    await Promise.all([
      https.drain(deadline),
      http.close(),
      tunnels.close({ code: 1001, reason: 'proxy shutting down', timeoutMs: Math.max(0, deadline - Date.now()) }),
    ]);
    await health.stop();
    await certs.stop();
    await upstreams.destroy();
    clientLimits.close();
    await admin.close();
    serverLog.info('stopped');
  };
  let closing: Promise<void> | undefined;
  return { ...addresses, close: () => (closing ??= close()) };
}

function isLoopback(address: string): boolean {
  return net.isIPv4(address) ? address.startsWith('127.') : address === '::1';
}
