/**
 * `deploy status [--site S] [--json]`: the fleet as the proxies report it (fleet-status.ts in shared):
 * live instances with their age, generation and requests in flight, then each site's active and staged
 * versions with their members: lease age, in flight, last request. Reads only.
 */
import { findSite, formatFleetStatus } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, openRoutesTarget, output, parseFlags } from '../command-line.js';
import type { Command } from '../command-line.js';

const NAME = 'status';

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, site: { type: 'string' } } as const;

const HELP = `Usage: deploy status [--site <site>]

Shows the fleet: each live proxy instance (id, age, routing generation served, requests and
WebSockets in flight), then each site's versions (the active one marked "*") with their upstreams:
the member's identity and lease age, requests and WebSockets in flight over all instances, and the
last request. Instances that stopped refreshing their heartbeat for three periods are left out.

Options:
  --site <site>          only this site
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: the document GET /api/status answers (see the README's Admin API).`;

export const statusCommand: Command = {
  name: NAME,
  synopsis: 'status [--site <site>]',
  summary: 'Show the proxy instances, versions, members, leases and requests in flight.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const target = await openRoutesTarget(values, env, NAME);
    const status = await target.status();
    if (values.site !== undefined) {
      findSite(await target.read(), values.site);
      status.sites = status.sites.filter((s) => s.name === values.site);
    }
    return output(values.json, status, formatFleetStatus(status));
  },
};
