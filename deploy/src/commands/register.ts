/**
 * `deploy register`: registers a version of a site (named by --site and --version, or by --tag: the
 * site whose tag prefix the tag starts with, and the tag as version name) with its upstreams, given
 * by --upstream and/or read from ECS task metadata (--upstream-from-ecs), and activates it.
 *
 * With the health check on (the default), it never sends traffic to an upstream that has not passed
 * it, even when other deploys change the table meanwhile (see health-gate.ts in @proximation/shared;
 * in API mode the proxy runs the check):
 * 1. register the version without activating it, so it is visible as staged; if it is the active
 *    version already (--join, --replace), the upstreams it adds are checked first;
 * 2. check its upstreams; if one fails, stop: the version stays registered but not active, and the
 *    previously active version keeps serving (ERR_HEALTH_CHECK_FAILED, exit 1);
 * 3. activate it in a second update, guarded on the current table: if another deploy activated a
 *    version registered after this one in the meantime, this one is not activated over it
 *    (ERR_SUPERSEDED), and if the version gained upstreams meanwhile they are checked first.
 * With --no-health-check, registering and activating is one update. --no-activate stops after step 1.
 * `register` itself then waits until every live proxy serves the result (convergence.ts; `deploy run`,
 * which shares the steps above, does not).
 * Registering the same version with the same upstreams changes nothing (apart from activating it).
 */
import { hostname } from 'node:os';
import {
  DEFAULT_PROXY_PORTS,
  MIN_LEASE_MS,
  ProximationError,
  checkVersionName,
  findSite,
  findVersion,
  identityProblem,
  normalizeUpstreamUrl,
  ownListenerProblem,
  siteForTag,
} from '@proximation/shared';
import type { FlagsOf, HealthCheckOptions, MemberLease, RoutingChangeResult, RoutingTable, RoutingTableChange, TrafficGuard } from '@proximation/shared';
import {
  COMMON_OPTIONS,
  COMMON_OPTIONS_HELP,
  JSON_OPTION,
  JSON_OPTION_HELP,
  durationFlag,
  integerFlag,
  openRoutesTarget,
  plural,
  usageError,
  parseFlags,
  upstreamFlag,
} from '../command-line.js';
import type { Command } from '../command-line.js';
import { upstreamFromEcs, type EcsUpstream } from '../ecs-metadata.js';
import { HEALTH_OPTIONS, HEALTH_OPTIONS_HELP, explainHealthFailure, healthCheckFromFlags } from '../health-flags.js';
import { generationNote, servingNote } from '../presentation.js';
import { CONVERGE_JSON_HELP, CONVERGE_OPTIONS, CONVERGE_OPTIONS_HELP, convergedOutput, convergenceFromFlags } from '../convergence.js';
import { observe, progressFor, type ProgressOutput } from '../progress.js';
import type { RoutesTarget } from '../routes-target.js';

const NAME = 'register';

/** Which version and which upstreams: the options register shares with deregister. */
export const MEMBER_OPTIONS = {
  ...COMMON_OPTIONS,
  ...JSON_OPTION,
  site: { type: 'string' },
  version: { type: 'string' },
  tag: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  'upstream-from-ecs': { type: 'boolean' },
  'container-port': { type: 'string' },
} as const;

export const REGISTER_OPTIONS = {
  ...MEMBER_OPTIONS,
  ...HEALTH_OPTIONS,
  replace: { type: 'boolean' },
  join: { type: 'boolean' },
  'allow-restricted-upstreams': { type: 'boolean' },
  'no-activate': { type: 'boolean' },
  'any-version-name': { type: 'boolean' },
  lease: { type: 'string' },
  identity: { type: 'string' },
} as const;

const HELP = `Usage: deploy register --site <site> --version <version> --upstream <url> [--upstream <url>...]
       deploy register --tag <tag> --upstream <url> [--upstream <url>...]

Registers a version of a site and makes it the active version once all its upstreams pass a health
check; the previously active version stays registered as the first rollback target. If the check
fails, the version stays registered but not active, the previous version keeps serving, and deploy
exits with 1 naming each failing upstream and what it answered.

If another deploy activates a version registered after this one while the check runs, this one is
not activated over it (exit 1): the newest registration wins, whichever check finishes first.
Registering a version again with the same upstreams changes nothing.

Options:
  --site <site>          the site (see deploy site add)
  --version <version>    the version name, such as devbuild-42 (A-Z, a-z, 0-9, ".", "_", "-")
  --tag <tag>            instead of --site and --version: the site whose tag prefix the tag starts
                         with (devbuild-42 -> dev), and the tag as the version name
  --upstream <url>       where the version runs: an origin such as http://10.0.1.9:8080 (http, https:
                         HTTP/1.1; h2c, h2: HTTP/2 in clear or over TLS);
                         repeat for several
  --upstream-from-ecs    add this ECS task's own address as an upstream, read from the task
                         metadata endpoint (awsvpc: the task's IP and the container port; bridge:
                         the instance's private IP and the mapped host port)
  --container-port <n>   with --upstream-from-ecs: the container port the app listens on, needed
                         when the container maps several
  --join                 if the version exists, add these upstreams to it (each task of a version
                         registering itself) instead of failing
  --replace              if the version exists, replace its upstreams with these
  --allow-restricted-upstreams
                         accept upstreams that are refused by default because a public request
                         must not reach them: link-local and cloud metadata addresses
                         (169.254.169.254, the ECS credentials endpoint 169.254.170.2,
                         fd00:ec2::254) and unspecified ones (0.0.0.0, ::); only for a service
                         that really lives there
  --no-activate          register (stage) the version without activating or checking it
                         (upstreams added to the already active version are still checked)
  --any-version-name     register a new version whose name does not start with the site's tag
                         prefix (refused otherwise, as a likely wrong site or typo)
  --lease <duration>|off the upstreams are members with a lease (at least 3s, such as 30s): every
                         proxy stops sending them requests once it runs out, unless a renewal
                         was written to their lease record (deploy run renews it); default 30s
                         with --upstream-from-ecs, else off. register alone renews nothing: a
                         task that registers itself runs its app under "deploy run", or gives
                         --lease off
  --identity <id>        with a lease: who holds it (default: the ECS task ARN with
                         --upstream-from-ecs, else host:pid); an address held by a live member of
                         another identity is refused
${HEALTH_OPTIONS_HELP}
${CONVERGE_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "version", "upstreams", "registration" (registered, replaced, joined or
unchanged), "activation" (activated, already-active or not-activated), "activeBefore",
"activeVersion", "healthChecked" (the upstreams checked; null with --no-health-check), "ecs"
({"upstream", "taskArn", "container", "networkMode"} or null), "lease" ({"identity",
"leaseMs"} or null), "generation", ${CONVERGE_JSON_HELP}}.

Exit status: 0 registered (and active unless --no-activate) and served by every live proxy, 1
failed (including a failed health check: then registered but not active; and proxies that did not
serve it within --converge-timeout: then registered all the same), 2 usage error.`;

type Registration = 'registered' | 'replaced' | 'joined' | 'unchanged';
type Activation = 'activated' | 'already-active' | 'not-activated';

export const registerCommand: Command = {
  name: NAME,
  synopsis: 'register (--site <site> --version <version> | --tag <tag>) --upstream <url>...',
  summary: 'Register a version of a site and activate it once it passes a health check.',
  async run(args, env, io) {
    const values = parseFlags(args, { ...REGISTER_OPTIONS, ...CONVERGE_OPTIONS }, NAME);
    if (values === undefined) return HELP;
    const converge = convergenceFromFlags(values, NAME);
    const plan = await planRegistration(values, env, NAME);
    const { summary, text } = await executeRegistration(plan, io);
    return convergedOutput(values, converge, plan.target, summary.generation, summary, text, io);
  },
};

export type RegisterFlags = FlagsOf<typeof REGISTER_OPTIONS>;

/**
 * A registration with every flag checked and the ECS metadata read, before the table is touched: what
 * `register` and `run` (which starts the app between planning and executing) share.
 */
export interface RegistrationPlan {
  readonly values: RegisterFlags;
  readonly which: { tag: string } | { site: string; version: string };
  /** Normalised upstream origins: the --upstream ones, then the ECS task's own. */
  readonly upstreams: readonly string[];
  readonly ecs: EcsUpstream | undefined;
  readonly lease: MemberLease | undefined;
  readonly health: HealthCheckOptions | undefined;
  readonly activate: boolean;
  readonly target: RoutesTarget;
}

/**
 * Checks register's flags as `command` (usage errors), reads the ECS metadata for --upstream-from-ecs
 * and opens the routes target. `defaultLeaseMs` is the lease when --lease is not given (none for
 * register alone unless the upstream comes from ECS; deploy run always has one).
 */
export async function planRegistration(values: RegisterFlags, env: NodeJS.ProcessEnv, command: string, defaultLeaseMs?: number): Promise<RegistrationPlan> {
  const which = chosenVersion(values.site, values.version, values.tag, command);
  const fromEcs = values['upstream-from-ecs'] === true;
  const given = values.upstream ?? [];
  if (given.length === 0 && !fromEcs) {
    throw usageError(
      'Missing --upstream: give each upstream URL with its own --upstream, such as --upstream http://10.0.1.9:8080 (or use --upstream-from-ecs inside an ECS task).',
      command,
    );
  }
  const givenOrigins = given.map((url) => upstreamFlag(url, '--upstream', command));
  if (values.replace === true && values.join === true) throw usageError('Give either --replace or --join, not both.', command);
  const portFlag = values['container-port'];
  if (portFlag !== undefined && !fromEcs) throw usageError('--container-port only applies with --upstream-from-ecs.', command);
  const containerPort = portFlag === undefined ? undefined : integerFlag(portFlag, '--container-port', 1, 65535, command);
  const health = healthCheckFromFlags(values, command);
  const leaseMs = leaseFlag(values.lease, defaultLeaseMs ?? (fromEcs ? DEFAULT_LEASE_MS : undefined), command);
  if (values.identity !== undefined && leaseMs === undefined) throw usageError('--identity only applies with a lease (--lease D).', command);
  if (values.identity !== undefined && identityProblem(values.identity) !== undefined) {
    throw usageError(`Invalid --identity ${JSON.stringify(values.identity)}: ${identityProblem(values.identity)}.`, command);
  }
  const target = await openRoutesTarget(values, env, command);
  const ecs = fromEcs ? await upstreamFromEcs(env, containerPort === undefined ? {} : { containerPort }) : undefined;
  const lease = leaseMs === undefined ? undefined : { identity: values.identity ?? ecs?.taskArn ?? `${hostname()}:${process.pid}`, leaseMs };
  const upstreams = [...givenOrigins, ...(ecs === undefined ? [] : [normalizeUpstreamUrl(ecs.upstream, 'the ECS task metadata (--upstream-from-ecs)')])];
  return { values, which, upstreams, ecs, lease, health, activate: values['no-activate'] !== true, target };
}

/** What register prints with --json (see HELP). */
export interface RegisterSummary {
  site: string;
  version: string;
  upstreams: readonly string[];
  registration: Registration;
  activation: Activation;
  activeBefore: string | null;
  activeVersion: string | null;
  healthChecked: string[] | null;
  ecs: EcsUpstream | null;
  lease: MemberLease | null;
  generation: number;
}

/**
 * Registers (and activates, health-gated) as the module header says, showing on `out` what the updates
 * wait for (none, or --json: nothing). Throws the target's errors, reworded for a failed check.
 */
export async function executeRegistration(plan: RegistrationPlan, out: ProgressOutput | undefined): Promise<{ summary: RegisterSummary; text: string }> {
  const { values, upstreams, ecs, lease, health, activate } = plan;
  const unobserved = plan.target;
  const before = await unobserved.read();
  const { site, version } = checkRegistration(plan, before);
  const { activeVersion: activeBefore, versions } = findSite(before, site);
  const existed = versions.some((v) => v.name === version);
  const register = (activateNow: boolean, guard?: TrafficGuard): RoutingTableChange => ({
    op: 'registerVersion',
    site,
    version,
    upstreams: [...upstreams],
    activate: activateNow,
    replace: values.replace === true,
    join: values.join === true,
    ...(values['allow-restricted-upstreams'] === true ? { allowRestrictedUpstreams: true } : {}),
    ...(guard === undefined ? {} : { guard }),
    ...(lease === undefined ? {} : { lease }),
  });
  const target = observe(unobserved, progressFor(out, values.json, `${site}/${version}`));
  const activeIn = (table: RoutingTable) => findSite(table, site).activeVersion === version;
  let staged: RoutingChangeResult;
  let activated: RoutingChangeResult | undefined;
  if (health === undefined) {
    staged = await target.update({ change: register(activate, activate ? { activeBefore } : undefined) });
  } else {
    // An active version takes traffic on the upstreams this adds as soon as they are written, so they are checked first.
    staged = await target.update({ change: register(false), healthCheck: health }).catch(
      explainHealthFailure(
        `Did not add upstreams to ${site}/${version}, the active version`,
        health,
        `Nothing changed: it keeps serving on the upstreams it had. Make the new ones answer GET ${health.path} with a 2xx or 3xx status, then register them again.`,
      ),
    );
    if (activate && !activeIn(staged.table)) {
      const stagedSite = findSite(staged.table, site);
      activated = await target.update({ change: { op: 'activateVersion', site, version, guard: { activeBefore } }, healthCheck: health }).catch(
        explainHealthFailure(
          `${site}/${version} is registered but NOT active`,
          health,
          `${servingNote(stagedSite)}. Make ${version} answer GET ${health.path} with a 2xx or 3xx status (or point --health-path at its ` +
            `health endpoint), then activate it: deploy activate --site ${site} --version ${version}`,
        ),
      );
    }
  }
  const checked = [...staged.healthChecked, ...(activated?.healthChecked ?? [])];

  const table = (activated ?? staged).table;
  const stored = findVersion(findSite(table, site), version).upstreams;
  const registration: Registration = !staged.changed ? 'unchanged' : !existed ? 'registered' : values.join === true ? 'joined' : 'replaced';
  const activation: Activation = !activeIn(table) ? 'not-activated' : activeBefore === version ? 'already-active' : 'activated';
  const changed = staged.changed || activated?.changed === true;
  const text =
    `${describeRegistration(registration, `${site}/${version}`, stored.length)}; ` +
    `${describeActivation(activation, health !== undefined, activeBefore, findSite(table, site).activeVersion)}` +
    (changed ? `; ${generationNote(table)}` : `; nothing changed (${generationNote(table)})`);
  const summary: RegisterSummary = {
    site,
    version,
    upstreams: stored,
    registration,
    activation,
    activeBefore,
    activeVersion: findSite(table, site).activeVersion,
    healthChecked: health === undefined ? null : checked,
    ecs: ecs ?? null,
    lease: lease ?? null,
    generation: table.generation,
  };
  return { summary, text };
}

/**
 * The site and version `plan` names in `table`, once they pass the checks that need the table: the site
 * exists (by name or tag prefix), the version name fits the site's tag scheme, no upstream is a default
 * proximation port. Throws as register does for each; deploy run calls it before it starts the app.
 */
export function checkRegistration(plan: RegistrationPlan, table: RoutingTable): { site: string; version: string } {
  const { values, which, upstreams } = plan;
  const site = 'tag' in which ? siteForTag(table, which.tag).name : which.site;
  const version = 'tag' in which ? which.tag : which.version;
  const { versions, tagPrefix } = findSite(table, site);
  const existed = versions.some((v) => v.name === version);
  checkVersionName(version);
  // A name outside the site's tag scheme is usually the wrong site or a typo; versions registered already are left alone.
  if (!existed && tagPrefix !== undefined && !version.startsWith(tagPrefix) && values['any-version-name'] !== true) {
    throw usageError(
      `Version "${version}" does not start with site ${site}'s tag prefix "${tagPrefix}": name it ${tagPrefix}..., ` +
        'check that it is the right site, or pass --any-version-name to register it under this name anyway.',
      NAME,
    );
  }
  // The proxy refuses its own listeners with its real ports; its default ones are known here too.
  for (const upstream of upstreams) {
    const problem = ownListenerProblem(upstream, DEFAULT_PROXY_PORTS, new Set());
    if (problem !== undefined) {
      throw new ProximationError('ERR_RESTRICTED_UPSTREAM', `Not registering ${site}/${version}: ${problem} (a default proximation port). Point it at the app's own port.`);
    }
  }
  return { site, version };
}

/** The lease of members that register themselves (--upstream-from-ecs, deploy run) unless --lease says otherwise. */
export const DEFAULT_LEASE_MS = 30_000;

/**
 * The lease --lease asks for, else `defaultMs` (undefined: none; "off": none either). The shortest is
 * MIN_LEASE_MS: renewals go out every third of the lease, and the proxies poll every second.
 */
function leaseFlag(text: string | undefined, defaultMs: number | undefined, command: string): number | undefined {
  if (text === 'off') return undefined;
  if (text === undefined) return defaultMs;
  const ms = durationFlag(text, '--lease', command);
  if (ms < MIN_LEASE_MS) {
    throw usageError(`--lease ${text} is shorter than ${MIN_LEASE_MS / 1000}s: renewals go out every third of the lease and the proxies poll every second; give 3s or more (30s is the default).`, command);
  }
  return ms;
}

function describeRegistration(registration: Registration, name: string, upstreams: number): string {
  switch (registration) {
    case 'registered':
      return `registered ${name} (${plural(upstreams, 'upstream')})`;
    case 'replaced':
      return `replaced the upstreams of ${name} (now ${plural(upstreams, 'upstream')})`;
    case 'joined':
      return `added to the upstreams of ${name} (now ${plural(upstreams, 'upstream')})`;
    case 'unchanged':
      return `${name} is already registered with these upstreams`;
  }
}

function describeActivation(activation: Activation, checked: boolean, before: string | null, now: string | null): string {
  switch (activation) {
    case 'activated':
      return `active ${checked ? 'after passing the health check' : 'without a health check'} (was ${before ?? 'none'})`;
    case 'already-active':
      return 'already active';
    case 'not-activated':
      return `not activated; ${now === null ? 'no version is active' : `${now} stays active`}`;
  }
}

/** The version `command` names by --site and --version, or by --tag; anything else is a usage error. */
export function chosenVersion(
  site: string | undefined,
  version: string | undefined,
  tag: string | undefined,
  command: string,
): { tag: string } | { site: string; version: string } {
  if (tag !== undefined) {
    if (site !== undefined || version !== undefined) throw usageError('Give either --tag, or --site and --version, not both.', command);
    return { tag };
  }
  if (site === undefined || version === undefined) {
    throw usageError(`Say which version to ${command}: --site <site> --version <version>, or --tag <tag>.`, command);
  }
  return { site, version };
}
