/**
 * Which DNS provider answers a DNS-01 challenge, and opening it. A provider is named by a spec: from the
 * configuration (PROXIMATION_DNS_PROVIDER and its settings), or read back from a lineage's renewal file
 * in certbot's terms (`authenticator = dns-rfc2136` with `dns_rfc2136_credentials`, `dns-route53`, or
 * `manual` with hooks and `pref_challs = dns-01`), so a lineage, ours or certbot's, is renewed with the
 * provider it was obtained with.
 *
 * `DnsProviders.open` opens each distinct spec once per process and keeps it (a provider holds no
 * connection, only its checked settings); it throws what the provider's opening throws
 * (ERR_DNS_CREDENTIALS_INVALID...). Provider modules are loaded only when used: the AWS SDK costs a
 * process that never talks to Route 53 nothing.
 */
import type { Storage } from '@proximation/shared';
import type { ConfValue } from '../renewal-conf.js';
import type { DnsProvider } from './provider.js';

export type DnsProviderSpec =
  | { type: 'rfc2136'; credentialsFile: string }
  | { type: 'route53' }
  | { type: 'hook'; authHook: string; cleanupHook: string };

/** The provider a lineage's `[renewalparams]` name, if they name a DNS-01 one. */
export function dnsSpecFromParams(params: ReadonlyMap<string, ConfValue>): DnsProviderSpec | undefined {
  const text = (key: string): string | undefined => {
    const value = params.get(key);
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const authenticator = text('authenticator');
  const credentialsFile = text('dns_rfc2136_credentials');
  if (authenticator === 'dns-rfc2136' && credentialsFile !== undefined) return { type: 'rfc2136', credentialsFile };
  if (authenticator === 'dns-route53') return { type: 'route53' };
  const challenges = params.get('pref_challs');
  const prefersDns = (Array.isArray(challenges) ? challenges : [challenges ?? '']).some((c) => c.trim().toLowerCase() === 'dns-01');
  const authHook = text('manual_auth_hook');
  const cleanupHook = text('manual_cleanup_hook');
  if (authenticator === 'manual' && prefersDns && authHook !== undefined && cleanupHook !== undefined) return { type: 'hook', authHook, cleanupHook };
  return undefined;
}

export class DnsProviders {
  private readonly opened = new Map<string, Promise<DnsProvider>>();

  /** `storage`: holds Route 53's per-name locks; `timeoutMs`: how long a hook may run, a Route 53 change may take. */
  constructor(private readonly options: { hookTimeoutMs: number; changeTimeoutMs: number; storage: Storage }) {}

  open(spec: DnsProviderSpec): Promise<DnsProvider> {
    const key = JSON.stringify(spec);
    let provider = this.opened.get(key);
    if (provider === undefined) {
      provider = this.openNew(spec).catch((err: unknown) => {
        this.opened.delete(key);
        throw err;
      });
      this.opened.set(key, provider);
    }
    return provider;
  }

  private async openNew(spec: DnsProviderSpec): Promise<DnsProvider> {
    switch (spec.type) {
      case 'rfc2136':
        return (await import('./rfc2136.js')).openRfc2136Provider(spec.credentialsFile);
      case 'route53':
        return (await import('./route53.js')).openRoute53Provider(this.options.storage, this.options.changeTimeoutMs);
      case 'hook':
        return (await import('./hook.js')).openHookProvider(spec.authHook, spec.cleanupHook, this.options.hookTimeoutMs);
    }
  }
}
