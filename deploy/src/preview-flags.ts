/**
 * The preview flags shared by `site add` (`--preview-domain`, `--preview-network`, `--preview-token`) and
 * `site preview` (`--domain`, `--network`, `--token`): they become the site's `preview` setting. The
 * domain, networks and version names are judged by the routing table (ERR_INVALID_HOSTNAME,
 * ERR_INVALID_ARGUMENT, ERR_INVALID_VERSION_NAME); network or token flags without a domain are a usage
 * error.
 */
import type { SitePreview } from '@proximation/shared';
import { usageError } from './command-line.js';

export interface PreviewFlags {
  domain: { name: string; value: string | undefined };
  networks: { name: string; value: string[] | undefined };
  token: { name: string; value: boolean | undefined };
}

export function previewFromFlags(flags: PreviewFlags, command: string): SitePreview | undefined {
  const networks = (flags.networks.value ?? []).flatMap((value) => value.split(',')).map((n) => n.trim()).filter((n) => n !== '');
  if (flags.domain.value === undefined) {
    if (networks.length > 0 || flags.token.value === true) throw usageError(`${flags.networks.name} and ${flags.token.name} need ${flags.domain.name}.`, command);
    return undefined;
  }
  return { domain: flags.domain.value, ...(networks.length === 0 ? {} : { networks }), ...(flags.token.value === true ? { token: true } : {}) };
}

export const PREVIEW_ACCESS_HELP = `Without a network or the token, preview hosts are open to anyone who knows the name. With
either, a client must be in one of the networks (as X-Forwarded-For from trusted proxies tells)
or send the proxies' admin token: curl -H "Proximation-Preview-Token: $TOKEN" ...`;
