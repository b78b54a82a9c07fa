/**
 * `deploy site remove <site>`: removes a site and all its versions from the routing table, so the
 * proxies stop routing its hosts. An unknown site is an error (ERR_UNKNOWN_SITE) listing the known ones.
 * On a terminal it asks first (confirm.ts); --dry-run changes nothing.
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseSiteCommand } from '../command-line.js';
import type { Command } from '../command-line.js';
import { CONFIRM_OPTIONS, CONFIRM_OPTIONS_HELP, confirmChange, shouldAsk } from '../confirm.js';
import { describeSite, describeVersions, generationNote, siteJson } from '../presentation.js';

const NAME = 'site remove';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, ...CONFIRM_OPTIONS } as const;

const HELP = `Usage: deploy site remove <site>

Removes a site with all its versions from the routing table: the proxies stop routing its hosts.
The apps behind it keep running; stop them yourself. On a terminal it asks first; without a
terminal (CI, scripts) it goes ahead.

Options:
${CONFIRM_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"removed": {"name", "hosts", "tagPrefix", "hsts", "activeVersion", "versionCount"},
"dryRun", "generation"}.`;

export const siteRemoveCommand: Command = {
  name: NAME,
  synopsis: 'site remove <site>',
  summary: 'Remove a site and all its versions.',
  async run(args, env, io) {
    const parsed = parseSiteCommand(args, OPTIONS, NAME, 'deploy site remove <site>', 'give one site name');
    if (parsed === undefined) return HELP;
    const { values, site: name } = parsed;
    const target = await openRoutesTarget(values, env, NAME);

    const current = await target.read();
    const site = findSite(current, name);
    const described = `site ${name} (${describeSite(site)}; ${describeVersions(site)})`;
    const dryRun = values['dry-run'] === true;
    if (!dryRun && shouldAsk(io, values.yes)) {
      await confirmChange(io, `This removes ${described}: the proxies stop serving its hosts.`, `site ${name} was not removed`);
    }
    const { table } = dryRun ? { table: current } : await target.update({ change: { op: 'removeSite', site: name } });
    return output(
      values.json,
      { removed: siteJson(site), dryRun, generation: table.generation },
      dryRun ? `would remove ${described}; dry run, nothing changed (${generationNote(table)})` : `removed ${described}; ${generationNote(table)}`,
    );
  },
};
