/**
 * Who may use a site's preview hosts (the site's `preview` setting): anyone, when it lists neither
 * networks nor the token; otherwise a client in one of its networks (the client address as the
 * forwarded headers establish it: X-Forwarded-For only from trusted proxies) or one that presents the
 * proxy's admin token in the `Proximation-Preview-Token` header. A token setting on a proxy without an
 * admin token lets nobody in by token. The header never reaches the upstream (forwarded-headers.ts drops
 * it). Pure and from memory: built once per routing table.
 */
import { networkMatcher, parseNetwork, type SitePreview } from '@proximation/shared';
import type { AdminAuthorizer } from '../admin/admin-auth.js';

export const PREVIEW_TOKEN_HEADER = 'proximation-preview-token';

/** Whether a client (its address, and the header's value) may use the preview host. */
export type PreviewGate = (client: string, token: string | undefined) => boolean;

/** The gate of `preview`; undefined when the preview hosts are open to everyone. */
export function previewGate(preview: SitePreview, authorize: AdminAuthorizer): PreviewGate | undefined {
  const networks = (preview.networks ?? []).flatMap((entry) => parseNetwork(entry) ?? []);
  if (networks.length === 0 && preview.token !== true) return undefined;
  const inNetworks = networkMatcher(networks);
  const byToken = preview.token === true;
  return (client, token) => inNetworks(client) || (byToken && token !== undefined && authorize(`Bearer ${token}`) === 'allowed');
}
