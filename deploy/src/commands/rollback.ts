/**
 * `deploy rollback --site <site>`: makes the previously active version active again, at once and
 * without a health check (going back must be instant). Repeated rollbacks walk further back; a site
 * without an earlier active version fails with ERR_NO_ROLLBACK.
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { CONVERGE_JSON_HELP, CONVERGE_OPTIONS, CONVERGE_OPTIONS_HELP, convergedOutput, convergenceFromFlags } from '../convergence.js';
import { generationNote } from '../presentation.js';

const NAME = 'rollback';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, ...CONVERGE_OPTIONS, site: { type: 'string' } } as const;

const HELP = `Usage: deploy rollback --site <site>

Makes the version that was active before the current one active again. It takes effect at once and
does not health-check the earlier version, so keep its containers running until you are sure of the
new one. Running it again goes further back ("deploy versions" shows the rollback order).

Options:
  --site <site>          the site
${CONVERGE_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "from", "to", "generation", ${CONVERGE_JSON_HELP}}.`;

export const rollbackCommand: Command = {
  name: NAME,
  synopsis: 'rollback --site <site>',
  summary: 'Go back to the previously active version of a site, at once.',
  async run(args, env, io) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const name = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const converge = convergenceFromFlags(values, NAME);
    const target = await openRoutesTarget(values, env, NAME);

    const from = findSite(await target.read(), name).activeVersion;
    const { table } = await target.update({ change: { op: 'rollback', site: name } });
    const to = findSite(table, name).activeVersion;
    return convergedOutput(values, converge, target, table.generation, { site: name, from, to, generation: table.generation }, `rolled back ${name} from ${from} to ${to}; ${generationNote(table)}`, io);
  },
};
