/**
 * `deploy versions --site <site>`: a site's versions in registration order with their upstreams and
 * registration times, which one is active, and the order in which rollbacks would go back. Reads only.
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, plural, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { generationNote, previewUrl, rollbackOrder } from '../presentation.js';

const NAME = 'versions';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, site: { type: 'string' } } as const;

const HELP = `Usage: deploy versions --site <site>

Lists the versions of a site, oldest first: name, registration time, upstreams and (for a site with
a preview domain) the version's preview URL, with the active one marked "*", and the versions
successive "deploy rollback"s would activate.

Options:
  --site <site>          the site
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"generation", "site", "activeVersion", "history" (earlier active versions,
most recent last), "rollbackOrder" (next first), "versions": [{"name", "upstreams",
"registeredAt", "active", "previewUrl" (null without a preview domain)}]}.`;

export const versionsCommand: Command = {
  name: NAME,
  synopsis: 'versions --site <site>',
  summary: 'List the versions of a site, which one is active, and the rollback order.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const name = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const table = await openRoutesTarget(values, env, NAME).read();
    const site = findSite(table, name);
    const rollbacks = rollbackOrder(site);

    const width = Math.max(0, ...site.versions.map((v) => v.name.length));
    const lines = site.versions.map((v) => {
      const preview = previewUrl(site, v.name);
      return `${v.name === site.activeVersion ? '*' : ' '} ${v.name.padEnd(width)}  ${v.registeredAt}  ${v.upstreams.join(', ')}${preview === undefined ? '' : `  ${preview}`}`;
    });
    const header =
      `site ${site.name}: ${plural(site.versions.length, 'version')}, oldest first, * = active; ` +
      `rollback order: ${rollbacks.length === 0 ? 'none' : rollbacks.join(', ')} (${generationNote(table)})`;
    return output(
      values.json,
      {
        generation: table.generation,
        site: site.name,
        activeVersion: site.activeVersion,
        history: site.history,
        rollbackOrder: rollbacks,
        versions: site.versions.map((v) => ({ ...v, active: v.name === site.activeVersion, previewUrl: previewUrl(site, v.name) ?? null })),
      },
      [header, ...lines].join('\n'),
    );
  },
};
