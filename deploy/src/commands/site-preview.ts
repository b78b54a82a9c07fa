/**
 * `deploy site preview <site> --domain <domain>|off [--network <cidr>...] [--token]`: gives every
 * version of the site its own host, `<version>.<domain>` (lower case), routed to that version whether it
 * is active or not, under one wildcard certificate for `*.<domain>`; `--domain off` removes them. Setting what is
 * set changes nothing. Every registered version must be a DNS label (ERR_INVALID_VERSION_NAME, exit 1).
 */
import { findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseSiteCommand, required } from '../command-line.js';
import type { Command } from '../command-line.js';
import { PREVIEW_ACCESS_HELP, previewFromFlags } from '../preview-flags.js';
import { describePreview, generationNote, siteJson } from '../presentation.js';

const NAME = 'site preview';

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...JSON_OPTION,
  domain: { type: 'string' },
  network: { type: 'string', multiple: true },
  token: { type: 'boolean' },
} as const;

const HELP = `Usage: deploy site preview <site> --domain <domain>|off [--network <cidr>...] [--token]

Gives every version of the site a preview host, <version>.<domain> (the version name in lower
case; it must be a DNS label: a-z, 0-9, "-", up to 63 characters), routed to that version whether
it is active or only registered, so a version can be tried before it takes traffic:

  deploy register --site <site> --version v42 --upstream ... --no-activate
  curl -f https://v42.<domain>/healthz        # smoke test the new version
  deploy activate --site <site> --version v42

The proxies serve all of them under one wildcard certificate for *.<domain> (on an ACME CA that
needs dns-01: deploy site add --challenge dns-01, or PROXIMATION_ACME_CHALLENGE=dns-01). Point
*.<domain> at the proxies in DNS.

Options:
  --domain <domain>      the preview domain, such as preview.example.com; off: no preview hosts
  --network <cidr>       only clients in this network (such as 10.0.0.0/16); repeat for several
  --token                (also) clients that send the proxies' admin token
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

${PREVIEW_ACCESS_HELP}

With --json: {"site": {..., "preview": {"domain", "networks", "token"} or null}, "changed", "generation"}.`;

export const sitePreviewCommand: Command = {
  name: NAME,
  synopsis: 'site preview <site> --domain <domain>|off [--network <cidr>...] [--token]',
  summary: 'Give every version of a site its own preview host, or stop.',
  async run(args, env) {
    const parsed = parseSiteCommand(args, OPTIONS, NAME, 'deploy site preview <site> --domain <domain>', 'give one site name');
    if (parsed === undefined) return HELP;
    const { values, site: name } = parsed;
    const domain = required(values.domain, '--domain', 'give the preview domain, such as --domain preview.example.com, or --domain off', NAME);
    const preview =
      domain === 'off'
        ? null
        : previewFromFlags(
            { domain: { name: '--domain', value: domain }, networks: { name: '--network', value: values.network }, token: { name: '--token', value: values.token } },
            NAME,
          )!;
    const target = await openRoutesTarget(values, env, NAME);
    const { table, changed } = await target.update({ change: { op: 'setPreview', site: name, preview } });
    const site = findSite(table, name);
    const now = describePreview(site);
    const text = changed ? `site ${name} now has ${now}; ${generationNote(table)}` : `site ${name} already has ${now}; nothing changed (${generationNote(table)})`;
    return output(values.json, { site: siteJson(site), changed, generation: table.generation }, text);
  },
};
