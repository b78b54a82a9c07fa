/**
 * `deploy activate --site <site> --version <version>`: makes a registered version the active one once
 * its upstreams pass a health check (unless --no-health-check); the previous one goes onto the
 * rollback history. If the check fails, nothing changes (ERR_HEALTH_CHECK_FAILED). If meanwhile another
 * deploy activated a version registered after this one, it is not replaced (ERR_SUPERSEDED).
 */
import { findSite, findVersion } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { HEALTH_OPTIONS, HEALTH_OPTIONS_HELP, explainHealthFailure, healthCheckFromFlags } from '../health-flags.js';
import { CONVERGE_JSON_HELP, CONVERGE_OPTIONS, CONVERGE_OPTIONS_HELP, convergedOutput, convergenceFromFlags } from '../convergence.js';
import { generationNote, servingNote } from '../presentation.js';
import { observe, progressFor } from '../progress.js';

const NAME = 'activate';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, ...HEALTH_OPTIONS, ...CONVERGE_OPTIONS, site: { type: 'string' }, version: { type: 'string' } } as const;

const HELP = `Usage: deploy activate --site <site> --version <version>

Makes a registered version of a site the active one, after its upstreams pass a health check; the
version active before stays registered and becomes the first rollback target. If the check fails,
nothing changes and the active version keeps serving (exit 1). Activating an older version on purpose
works; but if another deploy activates a version registered after this one while the check runs,
this one is not activated over it (exit 1).

Options:
  --site <site>          the site
  --version <version>    the version to activate ("deploy versions" lists them)
${HEALTH_OPTIONS_HELP}
${CONVERGE_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "version", "changed", "activeBefore", "healthChecked": [the
upstreams checked], "generation", ${CONVERGE_JSON_HELP}}.`;

export const activateCommand: Command = {
  name: NAME,
  synopsis: 'activate --site <site> --version <version>',
  summary: 'Make a registered version active once it passes a health check.',
  async run(args, env, io) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const site = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const version = required(values.version, '--version', 'name the version to activate, such as --version devbuild-42', NAME);
    const health = healthCheckFromFlags(values, NAME);
    const converge = convergenceFromFlags(values, NAME);
    const target = observe(await openRoutesTarget(values, env, NAME), progressFor(io, values.json, `${site}/${version}`));

    const before = await target.read();
    const { activeVersion: activeBefore } = findSite(before, site);
    findVersion(findSite(before, site), version); // an unknown version fails here, naming the known ones, before any check
    const applying = target.update({ change: { op: 'activateVersion', site, version, guard: { activeBefore } }, healthCheck: health });
    const { table, changed, healthChecked: checked } = await (health === undefined
      ? applying
      : applying.catch(
          explainHealthFailure(
            `Did not activate ${site}/${version}`,
            health,
            `${servingNote(findSite(before, site))}. Make ${version} answer GET ${health.path} with a 2xx or 3xx status ` +
              '(or point --health-path at its health endpoint), then activate it again.',
          ),
        ));
    const how = health === undefined ? 'without a health check' : `after ${checked.length === 1 ? 'its upstream' : `its ${checked.length} upstreams`} passed the health check`;
    const text = changed
      ? `activated ${site}/${version} ${how} (was ${activeBefore ?? 'none'}); ${generationNote(table)}`
      : `${site}/${version} is already active; nothing changed (${generationNote(table)})`;
    return convergedOutput(values, converge, target, table.generation, { site, version, changed, activeBefore, healthChecked: checked, generation: table.generation }, text, io);
  },
};
