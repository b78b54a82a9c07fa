/**
 * `deploy versions --site <site>`: a site's versions in registration order with their upstreams and
 * registration times, which one is active, and the order in which rollbacks would go back. Reads only.
 */
import { clockFrom, findSite, formatDuration, memberExpiresAt, type MemberClock, type SiteVersion } from '@proximation/shared';
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
"registeredAt", "active", "previewUrl" (null without a preview domain), "members": [{"upstream",
"identity", "leaseMs", "joinedAt", "expiresAt", "expired"} (the last two null in API mode)]}]}.`;

export const versionsCommand: Command = {
  name: NAME,
  synopsis: 'versions --site <site>',
  summary: 'List the versions of a site, which one is active, and the rollback order.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const name = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const target = await openRoutesTarget(values, env, NAME);
    const table = await target.read();
    const site = findSite(table, name);
    const clock = target.leases === undefined ? undefined : clockFrom(await target.leases(), Date.now());
    const members = (v: SiteVersion) => (v.members ?? []).map((m) => {
      const expiresAt = clock === undefined ? undefined : memberExpiresAt(site.name, v.name, m, clock.renewals);
      return { ...m, expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString(), expired: expiresAt === undefined ? null : expiresAt <= (clock as MemberClock).now };
    });
    const rollbacks = rollbackOrder(site);

    const width = Math.max(0, ...site.versions.map((v) => v.name.length));
    const lines = site.versions.map((v) => {
      const preview = previewUrl(site, v.name);
      const leases = members(v).map(
        (m) =>
          `\n      member ${m.upstream} (${m.identity}), lease ${formatDuration(m.leaseMs)}: ` +
          (m.expiresAt === null ? 'renewals not visible in API mode' : m.expired === true ? `expired at ${m.expiresAt}` : `runs until ${m.expiresAt}`),
      );
      return `${v.name === site.activeVersion ? '*' : ' '} ${v.name.padEnd(width)}  ${v.registeredAt}  ${v.upstreams.join(', ') || '(no upstreams: every member left)'}${preview === undefined ? '' : `  ${preview}`}${leases.join('')}`;
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
        versions: site.versions.map((v) => ({ ...v, members: members(v), active: v.name === site.activeVersion, previewUrl: previewUrl(site, v.name) ?? null })),
      },
      [header, ...lines].join('\n'),
    );
  },
};
