/**
 * `deploy run` of the test app (fixtures/run-app.mjs, which records its requests and signals as JSON
 * lines) as real processes, for the tests that need a member with its own supervisor. The app inherits
 * deploy run's output pipes, so after a SIGKILL of deploy run alone the pipes stay open as long as the
 * app lives: `exited` resolves on the exit of deploy run itself, and the cleanup kills the app before it
 * waits for deploy run, so that no wait can hang on an orphaned app. `keepAliveLoad` is the steady
 * keep-alive traffic through proxies such tests count failures in.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpsRequest } from '../../proximation/test/support/fixtures.js';
import { freePorts, type ServeProcess } from '../../proximation/test/support/process.js';
import { spawnDeploy, waitUntil, type DeployProcess } from './helpers.js';

const APP = fileURLToPath(new URL('fixtures/run-app.mjs', import.meta.url));

export interface AppEvent {
  event: string;
  at: number;
  pid: number;
  inFlight: number;
}

export interface RunningApp {
  readonly run: DeployProcess;
  /** http://127.0.0.1:<port> of the app. */
  readonly origin: string;
  /** Resolves once deploy run itself has exited (not waiting for the app's hold on its pipes). */
  readonly exited: Promise<void>;
  /** The app's events so far (complete lines only: a read may catch the app mid-append). */
  appEvents(): Promise<AppEvent[]>;
  /** Resolves once deploy run says it joined the version. */
  joined(): Promise<void>;
  /** SIGKILLs the app(s) and deploy run, whatever is left, and waits for deploy run; never throws. */
  kill(): Promise<void>;
}

/** `deploy run` of the app on a free port (or `port`); `defer` gets its cleanup. */
export async function runApp(
  routes: string,
  flags: string[],
  defer: (cleanup: () => Promise<void>) => void,
  appEnv: NodeJS.ProcessEnv = {},
  port?: number,
): Promise<RunningApp> {
  const appPort = port ?? ((await freePorts(1)) as [number])[0];
  const events = join(dirname(routes), `app-${appPort}-${Date.now()}.events`);
  const origin = `http://127.0.0.1:${appPort}`;
  const run = spawnDeploy(['run', '--routes', routes, '--upstream', origin, '--health-path', '/healthz', ...flags, '--', process.execPath, APP], {
    APP_PORT: String(appPort),
    APP_EVENTS: events,
    ...appEnv,
  });
  const exited = new Promise<void>((resolve) => {
    if (run.child.exitCode !== null || run.child.signalCode !== null) resolve();
    else run.child.once('exit', () => resolve());
  });
  const appEvents = async (): Promise<AppEvent[]> => {
    const text = await readFile(events, 'utf8').catch(() => '');
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AppEvent);
  };
  const kill = async (): Promise<void> => {
    for (const pid of new Set((await appEvents().catch(() => [])).map((e) => e.pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await exited;
  };
  defer(kill);
  const joined = () => waitUntil(() => {
    if (/deploy run: (registered|added to)/.test(run.stderr())) return true;
    if (run.child.exitCode !== null || run.child.signalCode !== null) throw new Error(`deploy run exited before it joined: ${run.stderr()}`);
    return false;
  }, 30_000, 'deploy run to join');
  return { run, origin, exited, appEvents, joined, kill };
}

/**
 * `clients` loops per proxy, each sending GET `path` for `host` over its own keep-alive HTTP/1.1
 * connection until stopped; counts the answers by body ("app" for any "app <pid>"), and keeps every
 * failure (a status other than 200, or an error).
 */
export function keepAliveLoad(proxies: readonly ServeProcess[], host: string, clients: number, path = '/') {
  let running = true;
  const bodies = new Map<string, number>();
  const failures: string[] = [];
  const loops = proxies.flatMap((proxy) => Array.from({ length: clients }, async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (running) {
        try {
          const res = await httpsRequest(proxy.target, host, { path, agent });
          const body = res.body.startsWith('app ') ? 'app' : res.body;
          if (res.status !== 200) failures.push(`${res.status} ${res.body}`);
          else bodies.set(body, (bodies.get(body) ?? 0) + 1);
        } catch (err) {
          failures.push(String(err));
        }
      }
    } finally {
      agent.destroy();
    }
  }));
  return {
    bodies,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}
