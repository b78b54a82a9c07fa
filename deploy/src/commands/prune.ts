/**
 * `deploy prune --site <site> --keep <n>`: removes all but the n most recently registered versions of
 * a site, always keeping the active one; their rollback history entries go with them.
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, integerFlag, openRoutesTarget, output, plural, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { generationNote } from '../presentation.js';

const NAME = 'prune';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, site: { type: 'string' }, keep: { type: 'string' } } as const;

const HELP = `Usage: deploy prune --site <site> --keep <n>

Removes old versions of a site: keeps the <n> most recently registered ones and the active one,
removes the rest (and their entries in the rollback history). --keep 0 keeps only the active one.

Options:
  --site <site>          the site
  --keep <n>             how many of the newest versions to keep
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "removed": [names], "kept": [names], "changed", "generation"}.`;

export const pruneCommand: Command = {
  name: NAME,
  synopsis: 'prune --site <site> --keep <n>',
  summary: 'Remove all but the newest versions of a site (never the active one).',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const name = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const keep = integerFlag(required(values.keep, '--keep', 'say how many of the newest versions to keep, such as --keep 5', NAME), '--keep', 0, 1_000_000, NAME);
    const target = openRoutesTarget(values, env, NAME);

    const before = findSite(await target.read(), name).versions.map((v) => v.name);
    const { table, changed } = await target.update({ change: { op: 'pruneVersions', site: name, keep } });
    const site = findSite(table, name);
    const kept = site.versions.map((v) => v.name);
    const removed = before.filter((v) => !kept.includes(v));
    const active = site.activeVersion === null ? '' : ` (active ${site.activeVersion})`;
    const text = changed
      ? `pruned ${plural(removed.length, 'version')} of ${name}: ${removed.join(', ')}; kept ${kept.join(', ')}${active}; ${generationNote(table)}`
      : `nothing to prune: site ${name} has ${plural(kept.length, 'version')}${active}; nothing changed (${generationNote(table)})`;
    return output(values.json, { site: name, removed, kept, changed, generation: table.generation }, text);
  },
};
