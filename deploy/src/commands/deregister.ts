/**
 * `deploy deregister (--site S --version V | --tag T) (--upstream URL... | --upstream-from-ecs)`: takes
 * upstreams out of a version, the leaving step of a task that stops (for shell entrypoints). With
 * --upstream-from-ecs the task's own address is taken out only if this task (its ECS task ARN) is the
 * member that holds it (ERR_MEMBER_IDENTITY otherwise, nothing changed); with --upstream, whoever
 * registered it. An upstream the version does not list changes nothing, so leaving twice is harmless.
 */
import { findSite, siteForTag, type RoutingTable } from '@proximation/shared';
import { COMMON_OPTIONS_HELP, JSON_OPTION_HELP, integerFlag, openRoutesTarget, parseFlags, plural, upstreamFlag, usageError } from '../command-line.js';
import type { Command } from '../command-line.js';
import { upstreamFromEcs } from '../ecs-metadata.js';
import { CONVERGE_JSON_HELP, CONVERGE_OPTIONS, CONVERGE_OPTIONS_HELP, convergedOutput, convergenceFromFlags } from '../convergence.js';
import { generationNote } from '../presentation.js';
import type { RoutesTarget } from '../routes-target.js';
import { MEMBER_OPTIONS, chosenVersion } from './register.js';

const NAME = 'deregister';

const OPTIONS = { ...MEMBER_OPTIONS, ...CONVERGE_OPTIONS } as const;

const HELP = `Usage: deploy deregister (--site <site> --version <version> | --tag <tag>) (--upstream <url>... | --upstream-from-ecs)

Takes upstreams out of a version: the proxies stop sending new requests there at their next poll of
the routing table (requests in flight finish). A task's entrypoint runs it when the task stops.
When the last upstream of the active version leaves, its site answers 503 until one joins.

Options:
  --site <site>          the site
  --version <version>    the version
  --tag <tag>            instead of --site and --version (see deploy register)
  --upstream <url>       an upstream to take out; repeat for several
  --upstream-from-ecs    this ECS task's own address, only if this task registered it
  --container-port <n>   with --upstream-from-ecs: the app's container port, if it maps several
${CONVERGE_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "version", "upstreams" (the version's upstreams now), "changed", "generation", ${CONVERGE_JSON_HELP}}.`;

export const deregisterCommand: Command = {
  name: NAME,
  synopsis: 'deregister (--site <site> --version <version> | --tag <tag>) (--upstream <url>... | --upstream-from-ecs)',
  summary: 'Take upstreams (or this ECS task) out of a version.',
  async run(args, env, io) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const which = chosenVersion(values.site, values.version, values.tag, NAME);
    const fromEcs = values['upstream-from-ecs'] === true;
    const given = (values.upstream ?? []).map((url) => upstreamFlag(url, '--upstream', NAME));
    if (given.length > 0 === fromEcs) throw usageError('Give either --upstream <url> (repeatable) or --upstream-from-ecs.', NAME);
    const portFlag = values['container-port'];
    if (portFlag !== undefined && !fromEcs) throw usageError('--container-port only applies with --upstream-from-ecs.', NAME);
    const converge = convergenceFromFlags(values, NAME);
    const target = await openRoutesTarget(values, env, NAME);
    const ecs = fromEcs ? await upstreamFromEcs(env, portFlag === undefined ? {} : { containerPort: integerFlag(portFlag, '--container-port', 1, 65535, NAME) }) : undefined;
    const site = 'tag' in which ? siteForTag(await target.read(), which.tag).name : which.site;
    const version = 'tag' in which ? which.tag : which.version;
    const upstreams = ecs === undefined ? given : [ecs.upstream];
    const { table, changed, text } = await leaveVersion(target, site, version, upstreams, ecs?.taskArn);
    const now = findSite(table, site).versions.find((v) => v.name === version)?.upstreams ?? [];
    return convergedOutput(values, converge, target, table.generation, { site, version, upstreams: now, changed, generation: table.generation }, text, io);
  },
};

/**
 * Takes `upstreams` out of site/version, only as the member `identity` when given (see the module
 * header); resolves with the table after it, whether it changed and a line saying what happened.
 */
export async function leaveVersion(
  target: RoutesTarget,
  site: string,
  version: string,
  upstreams: readonly string[],
  identity: string | undefined,
): Promise<{ table: RoutingTable; changed: boolean; text: string }> {
  const { table, changed } = await target.update({
    change: { op: 'deregister', site, version, upstreams: [...upstreams], ...(identity === undefined ? {} : { identity }) },
  });
  const now = findSite(table, site).versions.find((v) => v.name === version)?.upstreams ?? [];
  const text = changed
    ? `took ${upstreams.join(', ')} out of ${site}/${version} (now ${plural(now.length, 'upstream')}); ${generationNote(table)}`
    : `${site}/${version} does not list ${upstreams.join(', ')}; nothing changed (${generationNote(table)})`;
  return { table, changed, text };
}
