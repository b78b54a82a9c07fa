/**
 * `deploy prune --site <site> --keep <n>`: removes all but the n most recently registered versions of
 * a site, always keeping the active one; their rollback history entries go with them. A prune that
 * would leave nothing to roll back to asks first on a terminal (confirm.ts); --dry-run changes nothing.
 */
import { findSite, pruneVersions } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, integerFlag, openRoutesTarget, output, plural, required, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { CONFIRM_OPTIONS, CONFIRM_OPTIONS_HELP, confirmChange, shouldAsk } from '../confirm.js';
import { generationNote, rollbackOrder } from '../presentation.js';

const NAME = 'prune';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, ...CONFIRM_OPTIONS, site: { type: 'string' }, keep: { type: 'string' } } as const;

const HELP = `Usage: deploy prune --site <site> --keep <n>

Removes old versions of a site: keeps the <n> most recently registered ones and the active one,
removes the rest (and their entries in the rollback history). --keep 0 keeps only the active one.
On a terminal, a prune that would remove every version "deploy rollback" could go back to asks
first; without a terminal (CI, scripts) it goes ahead.

Options:
  --site <site>          the site
  --keep <n>             how many of the newest versions to keep
${CONFIRM_OPTIONS_HELP}
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "removed": [names], "kept": [names], "changed", "dryRun", "generation"}.`;

export const pruneCommand: Command = {
  name: NAME,
  synopsis: 'prune --site <site> --keep <n>',
  summary: 'Remove all but the newest versions of a site (never the active one).',
  async run(args, env, io) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const name = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const keep = integerFlag(required(values.keep, '--keep', 'say how many of the newest versions to keep, such as --keep 5', NAME), '--keep', 0, 1_000_000, NAME);
    const target = await openRoutesTarget(values, env, NAME);

    const current = await target.read();
    const before = findSite(current, name);
    const planned = findSite(pruneVersions(current, name, keep), name);
    const removing = before.versions.filter((v) => !planned.versions.some((k) => k.name === v.name)).map((v) => v.name);
    const dryRun = values['dry-run'] === true;
    if (!dryRun && removing.length > 0 && rollbackOrder(before).length > 0 && rollbackOrder(planned).length === 0 && shouldAsk(io, values.yes)) {
      await confirmChange(
        io,
        `This removes ${plural(removing.length, 'version')} of ${name} (${removing.join(', ')}), leaving no version to roll back to.`,
        'nothing was pruned',
      );
    }
    const { table, changed } = dryRun ? { table: current, changed: false } : await target.update({ change: { op: 'pruneVersions', site: name, keep } });
    const site = dryRun ? planned : findSite(table, name);
    const kept = site.versions.map((v) => v.name);
    const removed = before.versions.map((v) => v.name).filter((v) => !kept.includes(v));
    const active = site.activeVersion === null ? '' : ` (active ${site.activeVersion})`;
    const text =
      removed.length === 0
        ? `nothing to prune: site ${name} has ${plural(kept.length, 'version')}${active}; nothing changed (${generationNote(table)})`
        : dryRun
          ? `would prune ${plural(removed.length, 'version')} of ${name}: ${removed.join(', ')}; would keep ${kept.join(', ')}${active}; ` +
            `dry run, nothing changed (${generationNote(table)})`
          : `pruned ${plural(removed.length, 'version')} of ${name}: ${removed.join(', ')}; kept ${kept.join(', ')}${active}; ${generationNote(table)}`;
    return output(values.json, { site: name, removed, kept, changed, dryRun, generation: table.generation }, text);
  },
};
