/**
 * One worker process: the serving side (serving.ts) fed by its primary's messages (messages.ts). It
 * writes no shared state: routing tables, certificates and session ticket keys all come from the
 * primary, and a name it holds no certificate for yet is asked of the primary.
 *
 * `runWorker` says `hello`, loads its Config from the settings in the primary's `state` (exactly as
 * the primary loaded its own), installs the table, certificates and ticket keys, listens (its own
 * SO_REUSEPORT sockets where the distribution is `reuseport`, node:cluster's shared ones otherwise)
 * and says `serving`. When it cannot start it sends `fatal` with the reason and resolves 1. On `drain`,
 * or when the channel to the primary closes (the primary died), it drains until the deadline, logs
 * `stopped` and resolves 0. SIGTERM or SIGINT sent to the worker itself drains it the same way.
 */
import cluster from 'node:cluster';
import { errorMessage } from '@proximation/shared';
import { loadConfig, type Config } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import { releaseMemoryWhenIdle } from '../memory-release.js';
import { createServing, type ServedCertificate, type Serving } from '../serving.js';
import { distributionFor } from './distribution.js';
import { envelope, isEnvelope, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** Resolves once the message is written (at once when the channel is gone: the primary died, and the drain that follows needs no answer). */
function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || process.send === undefined) resolve();
    else process.send(envelope(message), undefined, {}, () => resolve());
  });
}

type StateMessage = Extract<PrimaryMessage, { type: 'state' }>;

export async function runWorker(): Promise<number> {
  if (!cluster.isWorker) throw new Error('runWorker runs in a worker process started by the primary (cluster/primary.ts)');
  const early: PrimaryMessage[] = [];
  let handle: ((message: PrimaryMessage) => void) | undefined;
  let lost!: () => void;
  const disconnected = new Promise<void>((resolve) => (lost = resolve));
  process.on('message', (raw: unknown) => {
    if (!isEnvelope<PrimaryMessage>(raw)) return;
    if (handle === undefined) early.push(raw);
    else handle(raw);
  });
  process.once('disconnect', () => lost());
  void send({ type: 'hello' });

  const state = await new Promise<StateMessage | undefined>((resolve) => {
    handle = (message) => {
      if (message.type === 'state') resolve(message);
      else if (message.type === 'drain') resolve(undefined);
    };
    void disconnected.then(() => resolve(undefined));
    for (const message of early.splice(0)) handle(message);
  });
  if (state === undefined) return 0;

  let config: Config;
  let log: Logger;
  try {
    config = loadConfig(state.settings.values, state.settings.env, state.settings.overrides);
    log = createLogger({ level: config.logLevel, format: config.logFormat }).child({ worker: state.slot });
  } catch (err) {
    await send({ type: 'fatal', message: errorMessage(err) });
    return 1;
  }
  const stopMemoryRelease = releaseMemoryWhenIdle(log.child({ part: 'memory' }));
  try {
    return await serve(config, log, state, disconnected, (next) => (handle = next));
  } finally {
    stopMemoryRelease();
    await new Promise<void>((resolve) => log.flush(() => resolve()));
  }
}

async function serve(
  config: Config,
  log: Logger,
  state: StateMessage,
  disconnected: Promise<void>,
  onMessage: (handle: (message: PrimaryMessage) => void) => void,
): Promise<number> {
  /** SNI lookups waiting for the primary's answer about a name. */
  const asked = new Map<string, ((found: { name: string; pair: ServedCertificate } | undefined) => void)[]>();
  const answer = (name: string, found: { name: string; pair: ServedCertificate } | undefined): void => {
    for (const resolve of asked.get(name) ?? []) resolve(found);
    asked.delete(name);
  };
  let serving: Serving | undefined;
  try {
    serving = await createServing(config, log, {
      // A name this worker's table does not route is not asked of the primary (a scanner's random SNI).
      certificateFor: (name) =>
        serving?.routes(name) !== true ? Promise.resolve(undefined) : new Promise((resolve) => {
          const waiting = asked.get(name);
          if (waiting !== undefined) waiting.push(resolve);
          else {
            asked.set(name, [resolve]);
            void send({ type: 'certificate-request', host: name });
          }
        }),
      reusePort: distributionFor(config) === 'reuseport',
      rotateTicketKeys: false,
    });
  } catch (err) {
    await send({ type: 'fatal', message: errorMessage(err) });
    return 1;
  }
  const ready = serving;
  ready.applyTable(state.table);
  ready.applyRenewals(state.renewals);
  for (const [host, cert] of state.certificates) ready.setCertificate(host, cert);
  let ticketKeys = state.ticketKeys;
  ready.setTicketKeys(ticketKeys);

  let drainRequested!: (deadline: number) => void;
  const drain = new Promise<number>((resolve) => (drainRequested = resolve));
  // The primary tells its workers when to drain; a signal of their own (Ctrl-C reaches the whole process
  // group) or the loss of the primary drains this worker alone.
  const drainNow = (): void => drainRequested(Date.now() + config.drainTimeoutMs);
  void disconnected.then(drainNow);
  process.on('SIGTERM', drainNow);
  process.on('SIGINT', drainNow);
  onMessage((message) => {
    switch (message.type) {
      case 'table':
        ready.applyTable(message.table);
        void send({ type: 'table-applied', routesGeneration: ready.generation });
        return;
      case 'renewals':
        ready.applyRenewals(message.renewals);
        return;
      case 'certificate':
        ready.setCertificate(message.host, message.cert);
        answer(message.asked ?? message.host, { name: message.host, pair: message.cert });
        return;
      case 'certificate-none':
        answer(message.host, undefined);
        return;
      case 'certificate-removed':
        ready.removeCertificate(message.host);
        return;
      case 'ticket-keys':
        ticketKeys = message.keys;
        ready.setTicketKeys(ticketKeys);
        return;
      case 'status':
        void (message.metrics ? ready.metrics.registry.getMetricsAsJSON() : Promise.resolve([])).then((metrics) =>
          send({
            type: 'status-reply',
            id: message.id,
            routesGeneration: ready.generation,
            connections: ready.connections,
            websockets: ready.websockets,
            metrics,
            traffic: ready.traffic(),
            rssBytes: process.memoryUsage.rss(),
            unavailable: ready.unavailable(),
          }),
        );
        return;
      case 'drain':
        drainRequested(message.deadline);
        return;
      case 'state':
        return;
    }
  });

  try {
    const addresses = await ready.listen();
    // node:cluster's listen hands every worker the ticket keys the first worker had when it listened
    // (tls.Server's _setServerData), which after a rotation are not the primary's current ones.
    ready.setTicketKeys(ticketKeys);
    void send({ type: 'serving', ...addresses, routesGeneration: ready.generation });
    log.child({ part: 'server' }).info({ https: addresses.https.port, http: addresses.http.port, pid: process.pid }, 'worker is serving');
  } catch (err) {
    await send({ type: 'fatal', message: errorMessage(err) });
    return 1;
  }
  const deadline = await drain;
  const serverLog = log.child({ part: 'server' });
  serverLog.info({ connections: ready.connections, websockets: ready.websockets, drainMs: Math.max(0, deadline - Date.now()) }, 'draining');
  await ready.drain(deadline);
  for (const host of [...asked.keys()]) answer(host, undefined);
  serverLog.info('stopped');
  return 0;
}
