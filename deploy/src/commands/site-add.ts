/**
 * `deploy site add <site> --host <name>... [--tag-prefix <prefix>] [--hsts-max-age <d> ...]`: adds a
 * site to the routing table. Adding a site that exists with the same hosts and tag prefix (and the same
 * HSTS, if HSTS flags are given) changes nothing and succeeds, so provisioning scripts can run it every
 * time.
 */
import { SITE_CHALLENGES, findSite, type SiteChallenge } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, hostFlag, openRoutesTarget, output, parseSiteCommand, usageError } from '../command-line.js';
import type { Command } from '../command-line.js';
import { SITE_ADD_HSTS_OPTIONS, hstsFromFlags } from '../hsts-flags.js';
import { previewFromFlags } from '../preview-flags.js';
import { describeSite, generationNote, siteJson } from '../presentation.js';

const NAME = 'site add';

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...JSON_OPTION,
  host: { type: 'string', multiple: true },
  'tag-prefix': { type: 'string' },
  challenge: { type: 'string' },
  'preview-domain': { type: 'string' },
  'preview-network': { type: 'string', multiple: true },
  'preview-token': { type: 'boolean' },
  ...SITE_ADD_HSTS_OPTIONS,
} as const;

const HELP = `Usage: deploy site add <site> --host <name> [--host <name>...] [--tag-prefix <prefix>]
                       [--challenge http-01|tls-alpn-01|dns-01]
                       [--preview-domain <domain> [--preview-network <cidr>...] [--preview-token]]
                       [--hsts-max-age <duration> [--hsts-include-subdomains] [--hsts-preload]]

Adds a site to the routing table: the proxies obtain certificates for its hosts and serve them once
a version is registered and active. If the site already exists with the same hosts and tag prefix,
nothing changes.

<site> is 1-63 characters of a-z, 0-9 and "-".

Options:
  --host <name>          a hostname of the site, such as dev.example.com, or a wildcard such as
                         *.example.com (any one label under it that no site lists itself;
                         needs dns-01, unless the proxies use the local CA); repeat for several
  --tag-prefix <p>       versions tagged <p>... belong to this site (deploy register --tag);
                         default: devbuild- for site dev, release- for site prod, none otherwise
  --challenge <type>     how the CA validates the site's names (ACME); default: the proxies'
                         PROXIMATION_ACME_CHALLENGE. dns-01 needs a DNS provider on the proxies
  --preview-domain <d>   every version also gets the host <version>.<d>, routed to it whether
                         active or not (see deploy site preview --help)
  --preview-network <cidr>  only clients in this network may use the preview hosts; repeat
  --preview-token        (also) clients that send the proxies' admin token
  --hsts-max-age <d>     send Strict-Transport-Security with this max-age on the site's HTTPS
                         responses, such as 1y or 180d (whole seconds); default: no HSTS.
                         Change it later with "deploy site hsts"
  --hsts-include-subdomains   the policy covers the hosts' subdomains too
  --hsts-preload         ask to be preloaded (needs --hsts-include-subdomains and at least 1y)
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site": {"name", "hosts", "tagPrefix", "hsts", "challenge", "preview", "activeVersion", "versionCount"},
"changed", "created", "generation"}; "created" is true when the routing table file did not exist and was
created (only site add creates one: every other command refuses a missing file).`;

export const siteAddCommand: Command = {
  name: NAME,
  synopsis: 'site add <site> --host <name>... [--tag-prefix <prefix>] [--challenge <type>] [--hsts-max-age <d>]',
  summary: 'Add a site served under the given hostnames.',
  async run(args, env) {
    const parsed = parseSiteCommand(args, OPTIONS, NAME, 'deploy site add <site> --host <name>', 'give one site name, and each host with its own --host');
    if (parsed === undefined) return HELP;
    const { values, site: name } = parsed;
    const hosts = (values.host ?? []).map((host) => hostFlag(host, '--host', NAME));
    if (hosts.length === 0) throw usageError(`Missing --host: give each hostname of site "${name}" with its own --host, such as --host ${name}.example.com.`, NAME);
    const hsts = hstsFromFlags(
      {
        maxAge: { name: '--hsts-max-age', value: values['hsts-max-age'] },
        includeSubDomains: { name: '--hsts-include-subdomains', value: values['hsts-include-subdomains'] },
        preload: { name: '--hsts-preload', value: values['hsts-preload'] },
      },
      NAME,
    );
    const target = await openRoutesTarget(values, env, NAME);

    const tagPrefix = values['tag-prefix'];
    const challenge = values.challenge;
    if (challenge !== undefined && !(SITE_CHALLENGES as readonly string[]).includes(challenge)) {
      throw usageError(`--challenge ${challenge}: give one of ${SITE_CHALLENGES.join(', ')}.`, NAME);
    }
    const preview = previewFromFlags(
      {
        domain: { name: '--preview-domain', value: values['preview-domain'] },
        networks: { name: '--preview-network', value: values['preview-network'] },
        token: { name: '--preview-token', value: values['preview-token'] },
      },
      NAME,
    );
    const change = {
      op: 'addSite',
      site: name,
      hosts,
      ...(tagPrefix === undefined ? {} : { tagPrefix }),
      ...(hsts === undefined ? {} : { hsts }),
      ...(challenge === undefined ? {} : { challenge: challenge as SiteChallenge }),
      ...(preview === undefined ? {} : { preview }),
    } as const;
    const { table, changed, created } = await target.update({ change });
    const site = findSite(table, name);
    const text = changed
      ? `${created === true ? `created a new routing table at ${target.location}; ` : ''}added site ${name} (${describeSite(site)}); ${generationNote(table)}`
      : `site ${name} already exists with these hosts and ${site.tagPrefix === undefined ? 'no tag prefix' : `tag prefix ${site.tagPrefix}`}; nothing changed (${generationNote(table)})`;
    return output(values.json, { site: siteJson(site), changed, created: created === true, generation: table.generation }, text);
  },
};
