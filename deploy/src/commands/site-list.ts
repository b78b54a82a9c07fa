/** `deploy site list`: the sites in the routing table, one per line, or as JSON. Reads only. */
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';
import { describeSite, describeVersions, siteJson } from '../presentation.js';

const NAME = 'site list';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION } as const;

const HELP = `Usage: deploy site list

Lists the sites in the routing table: hosts, tag prefix, HSTS (when set), active version and number
of versions.

Options:
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"generation", "sites": [{"name", "hosts", "tagPrefix", "hsts", "activeVersion",
"versionCount"}]}, with null for no tag prefix, no HSTS or no active version.`;

export const siteListCommand: Command = {
  name: NAME,
  synopsis: 'site list',
  summary: 'List the sites with their hosts and active versions.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const table = await (await openRoutesTarget(values, env, NAME)).read();
    const width = Math.max(0, ...table.sites.map((s) => s.name.length));
    const text =
      table.sites.length === 0
        ? 'no sites yet; add one with: deploy site add <site> --host <name>'
        : table.sites.map((site) => `${site.name.padEnd(width)}  ${describeSite(site)}; ${describeVersions(site)}`).join('\n');
    return output(values.json, { generation: table.generation, sites: table.sites.map(siteJson) }, text);
  },
};
