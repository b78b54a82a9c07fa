/**
 * `deploy run [register flags] -- CMD ARGS...`: the entrypoint of a task that serves a version. It
 * starts the app as its child (app-process.ts), waits until the app passes its health check, joins the
 * version as register does (register.ts: the same plan, the same health-gated activation) with a lease
 * (default 30 s), and renews the lease while the app lives (lease-renewal.ts). SIGINT, SIGHUP, SIGUSR1
 * and SIGUSR2 are passed on to the app. It exits with the app's status (128 + the signal's number when a
 * signal ended it).
 *
 * SIGTERM (ECS stopping the task): leave the version (deregister.ts), wait until no live proxy instance
 * has requests or WebSockets in flight to this member and every one serves the table without it
 * (drain.ts), at most --drain-timeout, then SIGTERM the app and wait for it. A second SIGTERM cuts the
 * drain short. If the app exits by itself, the member leaves at once. If the app exits or fails its
 * health check before joining, nothing is registered (the app is stopped: SIGTERM, SIGKILL 10 s later)
 * and deploy exits with the app's status, or 1 after a failed check. An error while joining stops the
 * app the same way and exits 1 with the error.
 *
 * The lease needs the shared directory (file mode): the renewals are written there, and the proxies'
 * heartbeats read from there; through a proxy's admin API it is refused as a usage error. Its messages
 * go to stderr, one line each, prefixed "deploy run:"; stdout is the app's alone.
 */
import { checkUpstreams, errorMessage, formatDuration, healthCheckFailed, isProximationError } from '@proximation/shared';
import type { FleetStorage, MemberLease } from '@proximation/shared';
import type { Writable } from 'node:stream';
import { durationFlag, parseFlags, usageError } from '../command-line.js';
import type { Command } from '../command-line.js';
import { describeExit, exitStatus, startApp, type AppExit, type AppProcess } from '../app-process.js';
import { membersStillOpen, waitUntilDrained } from '../drain.js';
import { HEALTH_OPTIONS_HELP } from '../health-flags.js';
import { keepLeases, type Member } from '../lease-renewal.js';
import { leaveVersion } from './deregister.js';
import { DEFAULT_LEASE_MS, REGISTER_OPTIONS, checkRegistration, executeRegistration, planRegistration, type RegistrationPlan } from './register.js';

const NAME = 'run';
const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
/** How long an app that is stopped because it never joined gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 10_000;
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];

const OPTIONS = { ...REGISTER_OPTIONS, 'drain-timeout': { type: 'string' } } as const;

const HELP = `Usage: deploy run (--site <site> --version <version> | --tag <tag>) (--upstream <url> | --upstream-from-ecs)
                  [register's options] [--drain-timeout <duration>] -- <command> [<argument>...]

A task's entrypoint: starts the app (<command> and its arguments, with this environment and the same
stdin, stdout and stderr), waits until it passes its health check, joins the version as
"deploy register" does (activating it unless --no-activate; give --join when the tasks of one version
each join it), and renews its lease while the app runs. SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 are
passed on to the app.

On SIGTERM (ECS stopping the task) it leaves the version at once, waits until no proxy instance has
requests or WebSockets in flight to it (at most --drain-timeout), then sends SIGTERM to the app.
When the app exits by itself, it leaves the version at once. If the app does not pass its health
check within --health-timeout, it is stopped and nothing is registered.

Options: those of "deploy register" (see deploy register --help), and
  --lease <duration>     the members' lease (default 30s, at least 3s); renewed every third of it
  --identity <id>        who holds the lease (default: the ECS task ARN with --upstream-from-ecs,
                         else host:pid)
  --drain-timeout <d>    how long to wait for requests in flight after leaving (default 30s); at most
                         the lease, and it must fit in the task's stopTimeout with the app's own
                         shutdown
${HEALTH_OPTIONS_HELP}
  --routes FILE          the routing table file (default: $PROXIMATION_ROUTES, else
                         $PROXIMATION_LETSENCRYPT_DIR/proximation/routes.json); a file, not --proxy:
                         the lease renewals and the proxies' heartbeats are kept beside it
  -h, --help             show this help

Exit status: the app's (128 + the signal's number if a signal ended it); 1 if the app did not pass
its health check or joining failed (the app is then stopped); 2 usage error (the app is not started).`;

export const runCommand: Command = {
  name: NAME,
  synopsis: 'run (--site <site> --version <version> | --tag <tag>) (--upstream <url> | --upstream-from-ecs) ... -- <command> [<argument>...]',
  summary: "A task's entrypoint: run the app, join the version while it lives, leave and drain on SIGTERM.",
  async run(args, env, io) {
    const dash = args.indexOf('--');
    const values = parseFlags(dash === -1 ? args : args.slice(0, dash), OPTIONS, NAME);
    if (values === undefined) return HELP;
    const command = dash === -1 ? [] : args.slice(dash + 1);
    if (dash === -1) throw usageError('Missing "--" and the app\'s command: deploy run [options] -- <command> [<argument>...], such as -- node server.js.', NAME);
    const [program, ...programArgs] = command;
    if (program === undefined || program === '') throw usageError('No command after "--": give the app to run, such as -- node server.js.', NAME);
    if (values.json === true) throw usageError('--json does not apply to deploy run: its messages go to stderr, one line each, and stdout is the app\'s.', NAME);
    if (values.lease === 'off') throw usageError('deploy run always leases its members (--lease off is for deploy register): give a lease such as --lease 30s, or leave the 30s default.', NAME);
    const plan = await planRegistration(values, env, NAME, DEFAULT_LEASE_MS);
    const lease = plan.lease;
    // planRegistration gives a lease whenever it has a default one.
    if (lease === undefined) throw new Error('deploy run: no lease planned');
    const drainTimeoutMs = values['drain-timeout'] === undefined ? DEFAULT_DRAIN_TIMEOUT_MS : durationFlag(values['drain-timeout'], '--drain-timeout', NAME);
    if (drainTimeoutMs > lease.leaseMs) {
      throw usageError(
        `--drain-timeout ${values['drain-timeout'] ?? formatDuration(drainTimeoutMs)} is longer than the lease (${formatDuration(lease.leaseMs)}): ` +
          'give a drain timeout no longer than the lease, or a longer --lease (and a task stopTimeout that fits both).',
        NAME,
      );
    }
    const fleet = plan.target.fleet;
    if (fleet === undefined) {
      throw usageError(
        `deploy run keeps its lease in the shared directory beside the routing table, which ${plan.target.location} (an admin API) does not give: ` +
          'give the table as a file with --routes, PROXIMATION_ROUTES or PROXIMATION_LETSENCRYPT_DIR.',
        NAME,
      );
    }
    // An unknown site, a version outside its tag scheme: said before the app starts, not after its health check.
    checkRegistration(plan, await plan.target.read());
    const stderr: Writable = io?.stderr ?? process.stderr;
    const report = (line: string) => void stderr.write(`deploy run: ${line}\n`);
    return supervise({ plan, lease, fleet, drainTimeoutMs, program, programArgs, env, report, out: io });
  },
};

/** A promise with its resolve, for the signals that arrive at any time. */
function latch(): { promise: Promise<void>; open: () => void; opened: () => boolean } {
  let open = () => {};
  let done = false;
  const promise = new Promise<void>((resolve) => (open = () => ((done = true), resolve())));
  return { promise, open, opened: () => done };
}

async function supervise(options: {
  plan: RegistrationPlan;
  lease: MemberLease;
  fleet: FleetStorage;
  drainTimeoutMs: number;
  program: string;
  programArgs: string[];
  env: NodeJS.ProcessEnv;
  report: (line: string) => void;
  out: Parameters<typeof executeRegistration>[1];
}): Promise<number> {
  const { plan, fleet, report } = options;
  const terminated = latch();
  const again = new AbortController();
  let app: AppProcess | undefined;
  const onTerm = () => {
    if (terminated.opened()) {
      report('SIGTERM again: not waiting for the drain any longer');
      again.abort();
    } else terminated.open();
  };
  const forward = (signal: NodeJS.Signals) => app?.signal(signal);
  // Installed before the app starts, so that no signal meant for it can end deploy run instead.
  process.on('SIGTERM', onTerm);
  for (const signal of FORWARDED) process.on(signal, forward);
  try {
    app = await startApp(options.program, options.programArgs, options.env);
    const running = app;
    const exit = running.exited.then((e) => ({ exit: e }));
    const term = terminated.promise.then(() => 'term' as const);

    if (plan.health !== undefined) {
      const abandon = new AbortController();
      const health = { ...plan.health, userAgent: 'proximation-deploy run health check', signal: abandon.signal };
      const checked = checkUpstreams(plan.upstreams, health).then((results) => ({ results }));
      const first = await Promise.race([checked, exit, term]);
      abandon.abort();
      if (first === 'term') return exitStatus(await running.stop(STOP_GRACE_MS));
      if ('exit' in first) {
        report(`the app ${describeExit(first.exit)} before it passed its health check; nothing was registered`);
        return exitStatus(first.exit);
      }
      if (first.results.some((r) => !r.healthy)) {
        await running.stop(STOP_GRACE_MS);
        throw healthCheckFailed('The app did not become healthy', first.results, plan.health, 'Nothing was registered, and the app was stopped.');
      }
    }

    const join = (p: RegistrationPlan) => executeRegistration(p, options.out);
    let joined: Awaited<ReturnType<typeof join>>;
    try {
      joined = await join(plan);
    } catch (err) {
      await running.stop(STOP_GRACE_MS);
      throw err;
    }
    const { site, version } = joined.summary;
    report(joined.text);
    const { identity, leaseMs } = options.lease;
    const members: Member[] = plan.upstreams.map((upstream) => ({ site, version, upstream, identity, leaseMs }));
    // Joining again after an expiry adds this task to the version as it is now, never activating it over a newer one.
    const rejoin = { ...plan, which: { site, version }, activate: false, values: { ...plan.values, join: true, replace: false } };
    const keeper = keepLeases({ fleet, members, readTable: () => plan.target.read(), rejoin: async () => report((await join(rejoin)).text), report });

    const outcome = await Promise.race([exit, term]);
    await keeper.stop();
    const leave = async () => {
      const left = await leaveVersion(plan.target, site, version, plan.upstreams, identity);
      report(left.text);
      await Promise.all(plan.upstreams.map((upstream) => fleet.removeLease(site, version, upstream).catch(() => undefined)));
      return left.table.generation;
    };
    if (outcome !== 'term') {
      report(`the app ${describeExit(outcome.exit)}; leaving ${site}/${version}`);
      await leave().catch((err: unknown) => report(`leaving failed (the proxies stop routing here once the lease runs out): ${errorMessage(err)}`));
      return exitStatus(outcome.exit);
    }

    report(`SIGTERM: leaving ${site}/${version}, then draining for at most ${formatDuration(options.drainTimeoutMs)}`);
    const generation = await leave().catch((err: unknown) => {
      report(`leaving failed (the proxies stop routing here once the lease runs out): ${errorMessage(err)}`);
      return undefined;
    });
    if (generation !== undefined) {
      void running.exited.then(() => again.abort());
      try {
        const waited = await waitUntilDrained({
          what: `${site}/${version} member ${plan.upstreams.join(', ')}`,
          open: () => membersStillOpen(fleet, { site, version, upstreams: plan.upstreams }, generation),
          timeoutMs: options.drainTimeoutMs,
          hint: 'Stopping the app anyway.',
          signal: again.signal,
        });
        report(`drained after ${formatDuration(waited)}; sending SIGTERM to the app`);
      } catch (err) {
        // Whatever kept the drain from being seen, the app is stopped: ECS kills it after stopTimeout anyway.
        report(isProximationError(err, 'ERR_NOT_DRAINED') ? err.message : `could not read the proxies' heartbeats (${errorMessage(err)}); sending SIGTERM to the app`);
      }
    }
    running.signal('SIGTERM');
    const stopped: AppExit = await running.exited;
    report(`the app ${describeExit(stopped)}`);
    return exitStatus(stopped);
  } finally {
    process.off('SIGTERM', onTerm);
    for (const signal of FORWARDED) process.off(signal, forward);
  }
}
