/**
 * `deploy remove --site <site> --version <version>`: removes a version that is not active (and its
 * rollback history entries). The active version is refused with ERR_VERSION_ACTIVE, the table unchanged.
 */
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { generationNote } from '../presentation.js';

const NAME = 'remove';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, site: { type: 'string' }, version: { type: 'string' } } as const;

const HELP = `Usage: deploy remove --site <site> --version <version>

Removes a version of a site from the routing table, and from its rollback history. The active
version cannot be removed: activate another one (or roll back) first.

Options:
  --site <site>          the site
  --version <version>    the version to remove
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "version", "generation"}.`;

export const removeCommand: Command = {
  name: NAME,
  synopsis: 'remove --site <site> --version <version>',
  summary: 'Remove a version that is not active.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const site = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const version = required(values.version, '--version', 'name the version to remove, such as --version devbuild-41', NAME);
    const { table } = await (await openRoutesTarget(values, env, NAME)).update({ change: { op: 'removeVersion', site, version } });
    return output(values.json, { site, version, generation: table.generation }, `removed ${site}/${version}; ${generationNote(table)}`);
  },
};
