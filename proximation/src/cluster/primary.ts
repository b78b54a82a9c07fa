/**
 * The primary of an instance with several workers: it serves no traffic itself. It does what must
 * happen once per instance (instance-duties.ts: the routing-table polling, certificate orders and
 * renewals, the local CA, the admin listener), rotates the session ticket keys, and supervises the
 * workers (worker.ts), passing every table, certificate and key set to each of them (messages.ts).
 *
 * Guarantees:
 * - Every worker gets the current table, certificates and ticket keys before it listens, then every
 *   change as it happens: all workers switch to a new routing table within one poll of each other, and
 *   all hold the same ticket keys, so a session resumes on whichever worker the connection reaches.
 * - `/healthz` is 200 only while every worker serves (and the instance is not draining); its body
 *   lists each worker's state, pid and routing generation. `/metrics` is the sum over the primary and
 *   every worker (prom-client's AggregatorRegistry; generation and expiry take the minimum), plus
 *   per-worker connections and restart counts.
 * - A worker that dies is logged, counted (`proximation_worker_restarts_total`) and restarted after a
 *   backoff that doubles with each death in the last minute (100 ms to 10 s); the other workers keep
 *   serving. When workers exit before serving MAX_START_FAILURES times in a row, `failed` rejects with
 *   ERR_WORKERS_CRASH_LOOP naming the last one's exit and reason (start-up rejects with it too).
 * - `close()` drains: health turns 503, every worker drains until the deadline (in-flight requests
 *   finish, WebSockets get 1001), a worker still there DRAIN_GRACE_MS after it is SIGKILLed, and the
 *   primary stops last.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ProximationError, sumTraffic, type MemberRenewal, type RoutingTable } from '@proximation/shared';
import { AggregatorRegistry, Counter, Gauge } from 'prom-client';
import type { Health } from '../admin/admin-server.js';
import type { Config } from '../config.js';
import { openInstanceDuties } from '../instance-duties.js';
import type { Logger } from '../logger.js';
import { Metrics } from '../metrics.js';
import { mergeUnavailable } from '../proxy/upstreams.js';
import type { ServedCertificate } from '../serving.js';
import type { RunningServer } from '../server.js';
import { TICKET_KEY_ROTATION_MS, newTicketKeys, rotateTicketKeys } from '../tls/ticket-keys.js';
import { distributionFor } from './distribution.js';
import { envelope, isEnvelope, type PrimaryMessage, type SettingsSources, type WorkerMessage, type WorkerStatus } from './messages.js';

export const MAX_START_FAILURES = 5;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const BACKOFF_WINDOW_MS = 60_000;
/** How long a worker may take to answer a status question (a scrape) before it is left out. */
const STATUS_TIMEOUT_MS = 2000;
/** After the drain deadline, what a worker gets to close before it is killed. */
const DRAIN_GRACE_MS = 2000;

const WORKER_ENTRY = fileURLToPath(new URL('./worker-main.js', import.meta.url));

type WorkerState = 'starting' | 'serving' | 'draining';

interface Slot {
  readonly slot: number;
  worker: Worker | undefined;
  state: WorkerState | 'restarting';
  /** Whether `state` went out: only then do changes go to it (messages keep their order). */
  informed: boolean;
  routesGeneration: number;
  fatal: string | undefined;
  deaths: number[];
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
}

type WorkerHealth = NonNullable<Health['workers']>[number];

export async function startPrimary(config: Config, log: Logger, settings: SettingsSources): Promise<RunningServer> {
  const supervisorLog = log.child({ part: 'workers' });
  const distribution = distributionFor(config);
  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({
    slot: i + 1,
    worker: undefined,
    state: 'restarting',
    informed: false,
    routesGeneration: -1,
    fatal: undefined,
    deaths: [],
    restarts: 0,
    restartTimer: undefined,
  }));
  const certificates = new Map<string, ServedCertificate>();
  let table: RoutingTable | undefined;
  let renewals = new Map<string, MemberRenewal>();
  let ticketKeys = newTicketKeys();
  let draining = false;
  let startFailures = 0;

  const broadcast = (message: PrimaryMessage): void => {
    for (const s of slots) if (s.informed && s.worker?.isConnected()) s.worker.send(envelope(message));
  };
  const sendTo = (s: Slot, message: PrimaryMessage): void => {
    if (s.worker?.isConnected()) s.worker.send(envelope(message));
  };

  // The primary's own metrics: renewals, certificate expiry, the table it polled; summed with the workers'.
  const metrics = new Metrics({ connections: () => 0, websockets: () => 0, clientBufferedBytes: () => 0, routesGeneration: () => table?.generation ?? -1 });
  const registers = [metrics.registry];
  const restartsTotal = new Counter({ name: 'proximation_worker_restarts_total', help: 'Worker processes restarted after they died, by worker slot', labelNames: ['worker'], registers });
  const workerConnections = new Gauge({ name: 'proximation_worker_connections', help: 'Open client connections on the HTTPS listener, by worker slot', labelNames: ['worker'], registers });
  new Gauge({
    name: 'proximation_workers_serving',
    help: 'Worker processes serving now (the instance is healthy while this equals the configured number)',
    registers,
    collect() {
      this.set(slots.filter((s) => s.state === 'serving').length);
    },
  });
  for (const s of slots) restartsTotal.inc({ worker: String(s.slot) }, 0);

  let nextStatusId = 0;
  const statusWaiters = new Map<number, (status: WorkerStatus | undefined) => void>();
  const askStatus = (s: Slot, withMetrics: boolean): Promise<WorkerStatus | undefined> =>
    new Promise((resolve) => {
      const id = ++nextStatusId;
      const timer = setTimeout(() => done(undefined), STATUS_TIMEOUT_MS);
      const done = (status: WorkerStatus | undefined): void => {
        clearTimeout(timer);
        statusWaiters.delete(id);
        resolve(status);
      };
      statusWaiters.set(id, done);
      sendTo(s, { type: 'status', id, metrics: withMetrics });
    });
  const exposition = async (): Promise<string> => {
    const serving = slots.filter((s) => s.state === 'serving');
    const statuses = await Promise.all(serving.map((s) => askStatus(s, true)));
    workerConnections.reset();
    serving.forEach((s, i) => workerConnections.set({ worker: String(s.slot) }, statuses[i]?.connections ?? 0));
    const parts = [await metrics.registry.getMetricsAsJSON(), ...statuses.flatMap((status) => (status === undefined ? [] : [status.metrics]))];
    return AggregatorRegistry.aggregate(parts).metrics();
  };

  const duties = await openInstanceDuties(config, log, {
    sink: {
      table: (next) => {
        table = next;
        broadcast({ type: 'table', table: next });
      },
      renewals: (next) => {
        renewals = next;
        broadcast({ type: 'renewals', renewals: next });
      },
      certificate: (host, cert) => {
        const served = { fullchainPem: cert.fullchainPem, keyPem: cert.keyPem, notAfter: cert.notAfter };
        certificates.set(host, served);
        metrics.certificateServed(host, cert.notAfter);
        broadcast({ type: 'certificate', host, cert: served });
      },
      certificateRemoved: (host) => {
        certificates.delete(host);
        metrics.certificateRemoved(host);
        broadcast({ type: 'certificate-removed', host });
      },
    },
    health: () => ({
      status: draining ? 'draining' : slots.every((s) => s.state === 'serving') ? 'ok' : 'degraded',
      routesGeneration: table?.generation ?? -1,
      workers: slots.map((s): WorkerHealth => ({ worker: s.slot, pid: s.worker?.process.pid, state: s.state, routesGeneration: s.routesGeneration })),
    }),
    metrics: { contentType: metrics.contentType, exposition, storageSource: (reachable) => metrics.storageSource(reachable) },
    onOrder: (result) => metrics.renewal(result),
    serving: async () => {
      const serving = slots.filter((s) => s.state === 'serving');
      const statuses = (await Promise.all(serving.map((s) => askStatus(s, false)))).filter((s) => s !== undefined);
      return {
        routesGeneration: Math.min(...slots.map((s) => s.routesGeneration)),
        workers: serving.length,
        traffic: sumTraffic(statuses.map((s) => s.traffic)),
        rssBytes: statuses.reduce((sum, s) => sum + s.rssBytes, process.memoryUsage.rss()),
        unavailable: mergeUnavailable(statuses.map((s) => s.unavailable)),
      };
    },
  });
  const stopRotation = rotateTicketKeys(
    {
      setTicketKeys: (keys) => {
        ticketKeys = keys;
        broadcast({ type: 'ticket-keys', keys });
      },
    },
    TICKET_KEY_ROTATION_MS,
  );

  let fail!: (err: ProximationError) => void;
  const failed = new Promise<never>((_resolve, reject) => (fail = reject));
  failed.catch(() => {});
  let firstAddresses: ((addresses: { http: AddressInfo; https: AddressInfo }) => void) | undefined;
  const served = new Promise<{ http: AddressInfo; https: AddressInfo }>((resolve) => (firstAddresses = resolve));
  let allServing!: () => void;
  const everyWorkerServing = new Promise<void>((resolve) => (allServing = resolve));

  const onMessage = (s: Slot, message: WorkerMessage): void => {
    switch (message.type) {
      case 'hello':
        s.informed = true;
        sendTo(s, {
          type: 'state',
          slot: s.slot,
          settings,
          table: table!,
          renewals,
          certificates: [...certificates],
          ticketKeys,
        });
        return;
      case 'serving':
        s.state = draining ? 'draining' : 'serving';
        s.routesGeneration = message.routesGeneration;
        startFailures = 0;
        duties.addOwnListener(message.http.port);
        duties.addOwnListener(message.https.port);
        firstAddresses?.({ http: message.http, https: message.https });
        firstAddresses = undefined;
        if (slots.every((other) => other.state === 'serving')) allServing();
        return;
      case 'fatal':
        s.fatal = message.message;
        return;
      case 'table-applied': {
        const served = Math.min(...slots.map((other) => other.routesGeneration));
        s.routesGeneration = message.routesGeneration;
        // The heartbeat written when the primary took the table showed the workers' older one; deploy waits on this.
        if (Math.min(...slots.map((other) => other.routesGeneration)) !== served) duties.servingChanged();
        return;
      }
      case 'certificate-request':
        void duties.certificateFor(message.host).then(
          (found) =>
            sendTo(s, found === undefined
              ? { type: 'certificate-none', host: message.host }
              : { type: 'certificate', host: found.name, asked: message.host, cert: { fullchainPem: found.cert.fullchainPem, keyPem: found.cert.keyPem, notAfter: found.cert.notAfter } }),
          () => sendTo(s, { type: 'certificate-none', host: message.host }),
        );
        return;
      case 'status-reply': {
        const { id, type: _type, ...status } = message;
        statusWaiters.get(id)?.(status);
        return;
      }
    }
  };

  const onExit = (s: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (s.worker !== worker) return;
    const wasServing = s.state === 'serving';
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    s.worker = undefined;
    s.informed = false;
    s.state = 'restarting';
    if (draining) return;
    const now = Date.now();
    s.deaths = [...s.deaths.filter((t) => now - t < BACKOFF_WINDOW_MS), now];
    const fatal = s.fatal;
    s.fatal = undefined;
    if (!wasServing) startFailures++;
    if (startFailures >= MAX_START_FAILURES) {
      const err = new ProximationError(
        'ERR_WORKERS_CRASH_LOOP',
        `worker processes keep exiting before they serve (${startFailures} times in a row): the last, worker ${s.slot}, ${how}` +
          `${fatal === undefined ? '' : `: ${fatal}`}. proximation stops instead of restarting it forever; fix the cause (see the log above) and start it again.`,
      );
      supervisorLog.fatal({ worker: s.slot, code, signal, reason: fatal }, err.message);
      fail(err);
      return;
    }
    const delayMs = Math.min(BACKOFF_BASE_MS * 2 ** (s.deaths.length - 1), BACKOFF_MAX_MS);
    s.restarts++;
    restartsTotal.inc({ worker: String(s.slot) });
    supervisorLog.error(
      { worker: s.slot, pid: worker.process.pid, code, signal, reason: fatal, wasServing, restartInMs: delayMs, restarts: s.restarts },
      `worker ${how}; restarting it`,
    );
    s.restartTimer = setTimeout(() => {
      s.restartTimer = undefined;
      if (!draining) fork(s);
    }, delayMs);
  };

  const fork = (s: Slot): void => {
    s.state = 'starting';
    s.fatal = undefined;
    const worker = cluster.fork();
    s.worker = worker;
    worker.on('message', (raw: unknown) => {
      if (isEnvelope<WorkerMessage>(raw)) onMessage(s, raw);
    });
    // A failed send to a dying worker: its exit is what matters, and is handled below.
    worker.on('error', () => {});
    worker.once('exit', (code, signal) => onExit(s, worker, code, signal));
  };

  // Workers inherit stdout and stderr, so their log lines join the primary's.
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: [], serialization: 'advanced' });
  for (const s of slots) fork(s);

  const stopWorkers = async (deadline: number): Promise<void> => {
    for (const s of slots) clearTimeout(s.restartTimer);
    const exits = slots.flatMap((s) => {
      const worker = s.worker;
      if (worker === undefined) return [];
      s.state = 'draining';
      sendTo(s, { type: 'drain', deadline });
      return [new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve())))];
    });
    const killer = setTimeout(() => {
      for (const s of slots) if (s.worker !== undefined && !s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, Math.max(0, deadline - Date.now()) + DRAIN_GRACE_MS);
    await Promise.all(exits);
    clearTimeout(killer);
  };

  const serverLog = log.child({ part: 'server' });
  let addresses: { http: AddressInfo; https: AddressInfo; admin: AddressInfo };
  try {
    const admin = await duties.listenAdmin();
    const [listening] = await Promise.all([Promise.race([served, failed]), Promise.race([everyWorkerServing, failed])]);
    addresses = { ...listening, admin };
  } catch (err) {
    draining = true;
    stopRotation();
    await stopWorkers(Date.now());
    await duties.close();
    throw err;
  }
  duties.start();
  serverLog.info(
    {
      https: addresses.https.port,
      http: addresses.http.port,
      admin: addresses.admin.port,
      workers: config.workers,
      distribution,
      adminApi: config.adminToken === undefined ? 'off' : 'on',
      routes: config.routesPath,
      issuer: duties.issuerName,
    },
    'proximation is serving',
  );

  const close = async (): Promise<void> => {
    draining = true;
    const deadline = Date.now() + config.drainTimeoutMs;
    serverLog.info({ drainTimeoutMs: config.drainTimeoutMs, workers: slots.filter((s) => s.worker !== undefined).length }, 'draining');
    await duties.stopWatching();
    stopRotation();
    await stopWorkers(deadline);
    await duties.close();
    serverLog.info('stopped');
  };
  let closing: Promise<void> | undefined;
  return { ...addresses, close: () => (closing ??= close()), failed };
}
