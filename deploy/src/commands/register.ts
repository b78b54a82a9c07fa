/**
 * `deploy register`: registers a version of a site with its upstreams and activates it, in one locked
 * update of the routing table. The version is named by --site and --version, or by --tag (site found
 * by tag prefix, version = tag). Registering the same version with the same upstreams again succeeds
 * without changing anything (apart from activating it if it is not active).
 */
import { parseArgs } from 'node:util';
import { findSite, registerVersion, siteForTag, updateRoutingTableFile } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, parseCommandLine, plural, rejectPositionals, routesFile, usageError } from '../command-line.js';
import type { Command } from '../command-line.js';

const NAME = 'register';

const OPTIONS = {
  ...COMMON_OPTIONS,
  site: { type: 'string' },
  version: { type: 'string' },
  tag: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  replace: { type: 'boolean' },
} as const;

const HELP = `Usage: deploy register --site <site> --version <version> --upstream <url> [--upstream <url>...]
       deploy register --tag <tag> --upstream <url> [--upstream <url>...]

Registers a version of a site in the routing table and makes it the active version; the previous
active version is kept for rollback. Currently activation is immediate: it does not wait for the
upstreams to pass a health check.

Options:
  --site <site>        the site (see deploy site add)
  --version <version>  the version name, such as devbuild-42 (A-Z, a-z, 0-9, ".", "_", "-")
  --tag <tag>          instead of --site and --version: the site whose tag prefix the tag starts
                       with (devbuild-42 -> dev), and the tag as the version name
  --upstream <url>     where the version runs: an http(s) origin such as http://10.0.1.9:8080;
                       repeat for several
  --replace            allow re-registering an existing version with different upstreams
${COMMON_OPTIONS_HELP}`;

export const registerCommand: Command = {
  name: NAME,
  synopsis: 'register (--site <site> --version <version> | --tag <tag>) --upstream <url>...',
  summary: 'Register a version of a site and make it active.',
  async run(args, env) {
    const { values, positionals } = parseCommandLine(
      () => parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true }),
      NAME,
    );
    if (values.help === true) return HELP;
    rejectPositionals(positionals, NAME);
    const which = chosenVersion(values.site, values.version, values.tag);
    const upstreams = values.upstream ?? [];
    if (upstreams.length === 0) {
      throw usageError('Missing --upstream: give each upstream URL with its own --upstream, such as --upstream http://10.0.1.9:8080.', NAME);
    }
    const path = routesFile(values.routes, env, NAME);

    let outcome = { name: '', upstreams: 0, action: '' };
    const { table, changed } = await updateRoutingTableFile(path, (current) => {
      const target = 'tag' in which ? { site: siteForTag(current, which.tag).name, version: which.tag } : which;
      const existing = findSite(current, target.site).versions.find((v) => v.name === target.version);
      const next = registerVersion(current, { ...target, upstreams, registeredAt: new Date(), activate: true, replace: values.replace === true });
      const registered = findSite(next, target.site).versions.find((v) => v.name === target.version);
      outcome = {
        name: `${target.site}/${target.version}`,
        upstreams: registered?.upstreams.length ?? 0,
        action: existing === undefined ? 'registered' : registered === existing ? 'activated' : 'replaced',
      };
      return next;
    });
    const generation = `routing table generation ${table.generation}`;
    const upstreamCount = plural(outcome.upstreams, 'upstream');
    if (!changed) return `${outcome.name} is already registered with these upstreams and active; nothing changed (${generation})`;
    if (outcome.action === 'activated') return `activated ${outcome.name} (already registered with these ${upstreamCount}); ${generation}`;
    return `${outcome.action} ${outcome.name} (${upstreamCount}), active; ${generation}`;
  },
};

function chosenVersion(
  site: string | undefined,
  version: string | undefined,
  tag: string | undefined,
): { tag: string } | { site: string; version: string } {
  if (tag !== undefined) {
    if (site !== undefined || version !== undefined) throw usageError('Give either --tag, or --site and --version, not both.', NAME);
    return { tag };
  }
  if (site === undefined || version === undefined) {
    throw usageError('Say which version to register: --site <site> --version <version>, or --tag <tag>.', NAME);
  }
  return { site, version };
}
