/**
 * `deploy site remove <site>`: removes a site and all its versions from the routing table, so the
 * proxies stop routing its hosts. An unknown site is an error (ERR_UNKNOWN_SITE) listing the known ones.
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseSiteCommand } from '../command-line.js';
import type { Command } from '../command-line.js';
import { describeSite, describeVersions, generationNote, siteJson } from '../presentation.js';

const NAME = 'site remove';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION } as const;

const HELP = `Usage: deploy site remove <site>

Removes a site with all its versions from the routing table: the proxies stop routing its hosts.
The apps behind it keep running; stop them yourself.

Options:
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"removed": {"name", "hosts", "tagPrefix", "hsts", "activeVersion", "versionCount"},
"generation"}.`;

export const siteRemoveCommand: Command = {
  name: NAME,
  synopsis: 'site remove <site>',
  summary: 'Remove a site and all its versions.',
  async run(args, env) {
    const parsed = parseSiteCommand(args, OPTIONS, NAME, 'deploy site remove <site>', 'give one site name');
    if (parsed === undefined) return HELP;
    const { values, site: name } = parsed;
    const target = openRoutesTarget(values, env, NAME);

    const site = findSite(await target.read(), name);
    const { table } = await target.update({ change: { op: 'removeSite', site: name } });
    return output(
      values.json,
      { removed: siteJson(site), generation: table.generation },
      `removed site ${name} (${describeSite(site)}; ${describeVersions(site)}); ${generationNote(table)}`,
    );
  },
};
