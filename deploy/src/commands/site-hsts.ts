/**
 * `deploy site hsts <site> --max-age <duration>|off [--include-subdomains] [--preload]`: sets or clears
 * the site's HSTS policy, the Strict-Transport-Security header the proxies add to its HTTPS responses.
 * Setting what is already set changes nothing and succeeds. The policy's rules are the routing table's
 * (ERR_INVALID_HSTS, exit 1); an unknown site is ERR_UNKNOWN_SITE.
 */
import { hstsHeaderValue, findSite } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseSiteCommand, required } from '../command-line.js';
import type { Command } from '../command-line.js';
import { HSTS_OPTIONS, hstsFromFlags } from '../hsts-flags.js';
import { generationNote, siteJson } from '../presentation.js';

const NAME = 'site hsts';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, ...HSTS_OPTIONS } as const;

const HELP = `Usage: deploy site hsts <site> --max-age <duration>|off [--include-subdomains] [--preload]

Sets the site's HSTS policy: the proxies add Strict-Transport-Security to every HTTPS response of
the site (proxied responses and the proxy's own error pages), replacing any the app sends. Browsers
that saw it use only HTTPS for the site's hosts until max-age has passed, so start small (5m, 1w)
and raise it once every host of the site works over HTTPS.

Options:
  --max-age <d>          how long browsers keep to HTTPS, such as 1y, 180d, 1w (whole seconds);
                         0s tells browsers to forget the policy (the way back: serve it for as long
                         as the old max-age, then turn HSTS off); off stops sending the header
  --include-subdomains   the policy covers every subdomain of the site's hosts too
  --preload              ask browsers' preload lists to include the hosts (hstspreload.org):
                         needs --include-subdomains and a max-age of at least 1y
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site": {"name", "hosts", "tagPrefix", "hsts", "activeVersion", "versionCount"},
"changed", "generation"}; "hsts" is {"maxAge" (seconds), "includeSubDomains", "preload"} or null.`;

export const siteHstsCommand: Command = {
  name: NAME,
  synopsis: 'site hsts <site> --max-age <duration>|off [--include-subdomains] [--preload]',
  summary: 'Set or clear the Strict-Transport-Security header of a site.',
  async run(args, env) {
    const parsed = parseSiteCommand(args, OPTIONS, NAME, 'deploy site hsts <site> --max-age <duration>|off', 'give one site name');
    if (parsed === undefined) return HELP;
    const { values, site: name } = parsed;
    const maxAge = required(values['max-age'], '--max-age', 'give a duration such as --max-age 1y, or --max-age off to stop sending the header', NAME);
    const hsts = hstsFromFlags(
      {
        maxAge: { name: '--max-age', value: maxAge },
        includeSubDomains: { name: '--include-subdomains', value: values['include-subdomains'] },
        preload: { name: '--preload', value: values.preload },
      },
      NAME,
    );
    const target = await openRoutesTarget(values, env, NAME);

    const { table, changed } = await target.update({ change: { op: 'setHsts', site: name, hsts: hsts ?? null } });
    const site = findSite(table, name);
    const header = site.hsts === undefined ? 'no Strict-Transport-Security header' : `Strict-Transport-Security: ${hstsHeaderValue(site.hsts)}`;
    const text = changed
      ? `site ${name} now sends ${header}; ${generationNote(table)}`
      : `site ${name} already sends ${header}; nothing changed (${generationNote(table)})`;
    return output(values.json, { site: siteJson(site), changed, generation: table.generation }, text);
  },
};
