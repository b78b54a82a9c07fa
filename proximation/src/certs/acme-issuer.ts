/**
 * The ACME CA as a CertificateIssuer (`PROXIMATION_ISSUER=acme`): orders certificates with acme-client's
 * lower-level API, answering challenges through the shared challenge store.
 *
 * `issue(names)`:
 * - uses the account stored in certbot's layout for this directory (certbot's own is reused), registering
 *   one on first use (AccountStore: once across the fleet). Nothing is sent to the CA before the first
 *   issuance, so a CA that is down does not stop the proxy from starting and serving what it has.
 * - creates an order (with PROXIMATION_ACME_PROFILE when set; refused up front when the directory lists
 *   profiles and not this one), then for each authorization, all at once: an already valid one is used
 *   as it is (CAs reuse them); a pending one is answered with the configured challenge type: the key
 *   authorization is put into the challenge store, the CA told, the authorization polled until it is
 *   no longer pending (acme-poll.ts), and the store entry removed whatever happened. acme-client's own
 *   pre-check of the challenge (over public DNS, which fails offline and behind load balancers) is
 *   never used.
 * - finalizes as soon as every authorization is valid (the order is then ready, RFC 8555 7.1.6) with a
 *   CSR for a fresh key of PROXIMATION_ACME_KEY_TYPE (always a new key, never the account key; made
 *   while the CA validates), polls the order while it is processing, downloads the chain and splits it
 *   into leaf and intermediates.
 * - returns the files and the certbot renewal parameters for renewal/<lineage>.conf (server, account,
 *   authenticator = manual with hooks into the challenge store, key type), so certbot can renew the
 *   lineage and proximation knows where it came from.
 * Polling honours the CA's Retry-After and otherwise starts at 250 ms (acme-poll.ts); badNonce answers
 * are retried by acme-client (up to 5 times per request).
 *
 * `renewalTime(cert)`: ARI (RFC 9773). When the directory offers `renewalInfo`, the CA's suggested window
 * for the certificate is fetched and a uniform random time inside it chosen (kept while the window does
 * not change), re-checked every ARI_RECHECK_MS or after the CA's Retry-After. Undefined without ARI, or
 * when the fetch fails (logged): the caller then uses the lifetime rule. Never throws. A renewal order
 * of one of this issuer's certificates carries `replaces` with its ARI identifier when the CA has ARI.
 *
 * `issued(cert)`: a lineage is this issuer's when its renewal file names this directory URL as `server`
 * (compared as URLs). That is certbot's own notion of where a lineage comes from; it keeps certbot-made
 * lineages from the same CA, and replaces ones from the local CA (they have no renewal file), from
 * another CA, or from Let's Encrypt staging after switching to production. Cached per lineage and
 * serial number, so the periodic check reads each renewal file once per certificate.
 *
 * Throws ProximationError: ERR_ACME_ORDER_FAILED (the CA refused something; its message included),
 * ERR_ACME_VALIDATION_FAILED (a challenge came back invalid; the CA's reason included),
 * ERR_ACME_CHALLENGE_UNAVAILABLE (the CA does not offer the configured challenge type),
 * ERR_ACME_PROFILE_UNKNOWN, ERR_ACME_EAB_REQUIRED, and from the transport ERR_ACME_TLS_UNTRUSTED,
 * ERR_ACME_UNREACHABLE, ERR_ACME_RATE_LIMITED; plus the account store's and file storage's errors.
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import acme, { type Client, type Order } from 'acme-client';
import { ProximationError, errorMessage, isProximationError } from '@proximation/shared';
import type { AcmeChallengeType, AcmeKeyType } from '../config.js';
import type { Logger } from '../logger.js';
import { AccountStore, type AcmeAccount } from './account-store.js';
import { pollResource } from './acme-poll.js';
import { AcmeTransport, openAcmeTransport } from './acme-transport.js';
import { ariCertId, ariRenewalTime, parseRenewalInfo, type RenewalWindow } from './ari.js';
import type { CertStore, LoadedCertificate } from './cert-store.js';
import type { CertificateIssuer, IssuedCertificate, IssueOptions } from './certificate-manager.js';
import { lineageName } from './lineage-name.js';
import { certbotManualHooks, type ChallengeStore, type StoredChallengeType } from './challenge-store.js';
import { systemResolvers, type DnsServer } from './dns01/dns-client.js';
import { DnsJournal } from './dns01/journal.js';
import { PropagationCheck, type PropagationOptions } from './dns01/propagation.js';
import { challengeRecordName, type DnsProvider, type TxtRecord } from './dns01/provider.js';
import { DnsProviders, dnsSpecFromParams, type DnsProviderSpec } from './dns01/providers.js';
import { keyTypeParams, readRenewalConf, type ConfValue } from './renewal-conf.js';

// X.520 upper bound for a commonName; longer names go in the SAN only.
const MAX_COMMON_NAME = 64;
// A DNS provider's errors that mean the record was certainly not added.
const NOT_APPLIED = new Set(['ERR_DNS_UPDATE_REFUSED', 'ERR_DNS_ZONE_NOT_FOUND', 'ERR_DNS_CREDENTIALS_INVALID']);
// Let's Encrypt asks for ARI checks at least twice a day.
const ARI_RECHECK_MS = 6 * 3600 * 1000;

export interface DnsSettings {
  /** The configured provider; a lineage may name its own (certbot's dns-rfc2136 and its credentials). */
  provider: DnsProviderSpec | undefined;
  hookTimeoutMs: number;
  propagation: Omit<PropagationOptions, 'resolvers'> & { resolvers: DnsServer[] | undefined };
}

export interface AcmeIssuerSettings {
  directoryUrl: string;
  email: string | undefined;
  caCertsPath: string | undefined;
  profile: string | undefined;
  eab: { kid: string; hmacKey: string } | undefined;
  keyType: AcmeKeyType;
  challenge: AcmeChallengeType;
  dns: DnsSettings;
}

export interface AcmeIssuerOptions {
  /** Its storage also holds the account, the DNS-01 journal and Route 53's locks. */
  store: CertStore;
  challenges: ChallengeStore;
  settings: AcmeIssuerSettings;
  log: Logger;
}

/** The parts of RFC 8555 objects used here (acme-client's types know neither tls-alpn-01 nor profiles). */
interface Challenge {
  type: string;
  url: string;
  status: string;
  token: string;
  error?: { detail?: string };
}
interface Authorization {
  url: string;
  status: string;
  wildcard?: boolean;
  identifier: { type: string; value: string };
  challenges: Challenge[];
}
/** The directory's `meta` (RFC 8555 7.1.1, and `profiles` from the ACME profiles draft). */
interface DirectoryMeta {
  externalAccountRequired?: boolean;
  profiles?: Record<string, string>;
}
/** How one order's challenges are answered. */
type ChallengePlan = { type: StoredChallengeType } | { type: 'dns-01'; dns: DnsPlan };
interface DnsPlan {
  provider: DnsProvider;
}
/** One challenge's answer: put up, taken down (in `finally`), and what to check when the CA says no. */
interface ChallengeAnswer {
  present(): Promise<void>;
  cleanup(): Promise<void>;
  advice: string;
}
/** The parts of the directory used here; `renewalInfo` from RFC 9773. */
interface Directory {
  meta: DirectoryMeta;
  renewalInfo: string | undefined;
}
/** The renewal time chosen for one certificate, and when to ask the CA again. */
interface AriChoice {
  serialNumber: string;
  window: RenewalWindow | undefined;
  time: Date | undefined;
  checkAfter: number;
}

export async function openAcmeIssuer(options: AcmeIssuerOptions): Promise<AcmeIssuer> {
  const transport = await openAcmeTransport({
    directoryUrl: options.settings.directoryUrl,
    caCertsPath: options.settings.caCertsPath,
    log: options.log,
  });
  return new AcmeIssuer(options, transport);
}

export class AcmeIssuer implements CertificateIssuer {
  readonly name = 'acme';
  private readonly accounts: AccountStore;
  private client: Promise<{ client: Client; account: AcmeAccount }> | undefined;
  private directoryDoc: Promise<Directory> | undefined;
  private readonly ari = new Map<string, AriChoice>();
  private readonly ownership = new Map<string, { serialNumber: string; ours: boolean }>();
  private readonly providers: DnsProviders;
  private readonly journal: DnsJournal;
  private propagationCheck: PropagationCheck | undefined;

  constructor(
    private readonly options: AcmeIssuerOptions,
    private readonly transport: AcmeTransport,
  ) {
    this.accounts = new AccountStore(options.store.configDir, options.settings.directoryUrl, options.store.storage);
    this.providers = new DnsProviders({
      hookTimeoutMs: options.settings.dns.hookTimeoutMs,
      changeTimeoutMs: options.settings.dns.propagation.timeoutMs,
      storage: options.store.storage,
    });
    this.journal = new DnsJournal(options.store.storage, (lineage) => options.store.liveDir(lineage));
  }

  async issued(cert: LoadedCertificate): Promise<boolean> {
    const known = this.ownership.get(cert.lineage);
    if (known?.serialNumber === cert.serialNumber) return known.ours;
    const conf = await readRenewalConf(this.options.store, cert.lineage);
    const ours = conf?.server !== undefined && sameUrl(conf.server, this.options.settings.directoryUrl);
    this.ownership.set(cert.lineage, { serialNumber: cert.serialNumber, ours });
    return ours;
  }

  renewalTime(cert: LoadedCertificate): Promise<Date | undefined> {
    const cached = this.ari.get(cert.lineage);
    if (cached?.serialNumber === cert.serialNumber && Date.now() < cached.checkAfter) return Promise.resolve(cached.time);
    const previous = cached?.serialNumber === cert.serialNumber ? cached : undefined;
    return this.transport.run(async () => {
      let choice: AriChoice;
      try {
        const { renewalInfo } = await this.directory();
        if (renewalInfo === undefined) {
          choice = { serialNumber: cert.serialNumber, window: undefined, time: undefined, checkAfter: Date.now() + ARI_RECHECK_MS };
        } else {
          const url = `${renewalInfo.replace(/\/$/, '')}/${ariCertId(cert.certPem)}`;
          const response = await acme.axios.get<unknown>(url);
          const window = parseRenewalInfo(response.data, url);
          const retryAfter = Number(response.headers['retry-after']);
          // The same window keeps its time: re-rolling on every check would favour its early part.
          const same = previous?.window !== undefined && previous.window.start.getTime() === window.start.getTime() && previous.window.end.getTime() === window.end.getTime();
          const time = same ? previous.time : ariRenewalTime(window);
          choice = { serialNumber: cert.serialNumber, window, time, checkAfter: Date.now() + (retryAfter > 0 ? Math.min(retryAfter * 1000, ARI_RECHECK_MS) : ARI_RECHECK_MS) };
          this.options.log.debug({ name: cert.lineage, window, renewAt: time }, 'ACME renewal information');
        }
      } catch (err) {
        this.options.log.warn({ name: cert.lineage, err: errorMessage(err) }, 'could not fetch ACME renewal information; using the lifetime rule');
        choice = { serialNumber: cert.serialNumber, window: undefined, time: undefined, checkAfter: Date.now() + ARI_RECHECK_MS / 6 };
      }
      this.ari.set(cert.lineage, choice);
      return choice.time;
    });
  }

  issue(names: string[], options: IssueOptions = {}): Promise<IssuedCertificate> {
    return this.transport.run(async () => {
      try {
        return await this.order(names, options);
      } catch (err) {
        if (isProximationError(err)) throw err;
        throw new ProximationError(
          'ERR_ACME_ORDER_FAILED',
          `ordering a certificate for ${names.join(', ')} from ${this.options.settings.directoryUrl} failed: ${errorMessage(err)}`,
          { cause: err },
        );
      }
    });
  }

  private async order(names: string[], options: IssueOptions): Promise<IssuedCertificate> {
    const { settings, log } = this.options;
    const replacing = options.replaces;
    const lineage = options.lineage ?? lineageName(names[0]!);
    await this.cleanLeftovers(lineage);
    const plan = await this.plan(options);
    await this.checkProfile();
    const { client, account } = await this.accountClient();
    const replaces = replacing !== undefined && (await this.directory()).renewalInfo !== undefined ? ariCertId(replacing.certPem) : undefined;
    const request = {
      identifiers: names.map((value) => ({ type: 'dns', value })),
      ...(settings.profile === undefined ? {} : { profile: settings.profile }),
      ...(replaces === undefined ? {} : { replaces }),
    };
    const order = await client.createOrder(request);
    log.info({ names, order: order.url, replaces }, 'ACME order created');
    const key = generateKey(settings.keyType);
    // Settled here too, so a failed order does not leave the key's rejection unhandled.
    key.catch(() => undefined);
    const authorizations = (await client.getAuthorizations(order)) as unknown as Authorization[];
    await Promise.all(authorizations.map((authz) => this.authorize(client, authz, plan, lineage)));

    const keyPem = await key;
    const [, csr] = await acme.crypto.createCsr(
      { altNames: names, ...(names[0]!.length <= MAX_COMMON_NAME ? { commonName: names[0] } : {}) },
      keyPem,
    );
    const finalized = await client.finalizeOrder(order, csr);
    const issued = finalized.status === 'processing' ? await pollResource<Order>(client, order.url, ['processing']) : finalized;
    if (issued.status !== 'valid') throw new Error(`the order ${order.url} is ${issued.status} after finalization, not valid`);
    // acme-client returns polled objects without their URL, which getCertificate needs.
    const [certPem, ...chain] = acme.crypto.splitPemChain(await client.getCertificate({ ...issued, url: order.url }));
    if (certPem === undefined) throw new Error('the CA returned no certificate');
    log.info({ names, order: order.url }, 'ACME certificate issued');
    return {
      certPem: withNewline(certPem),
      chainPem: chain.map(withNewline).join(''),
      keyPem,
      renewalParams: this.renewalParams(account, plan),
    };
  }

  private async authorize(client: Client, authz: Authorization, plan: ChallengePlan, lineage: string): Promise<void> {
    const { settings, log } = this.options;
    const name = authz.identifier.value;
    if (authz.status === 'valid') {
      log.debug({ name }, 'ACME authorization already valid');
      return;
    }
    if (authz.status !== 'pending') {
      throw new ProximationError('ERR_ACME_VALIDATION_FAILED', `the ACME authorization for ${name} is ${authz.status} (${authz.url}); a new order will start over.`);
    }
    const challenge = authz.challenges.find((c) => c.type === plan.type);
    if (challenge === undefined) {
      throw new ProximationError(
        'ERR_ACME_CHALLENGE_UNAVAILABLE',
        `${settings.directoryUrl} offers ${authz.challenges.map((c) => c.type).join(', ')} for ${name}${authz.wildcard === true ? ' (a wildcard)' : ''}, not ${plan.type}. ` +
          (authz.wildcard === true ? 'Wildcard names need dns-01: set PROXIMATION_ACME_CHALLENGE=dns-01 or the site\'s challenge (deploy site add --challenge dns-01).' : 'Set PROXIMATION_ACME_CHALLENGE to one it offers.'),
      );
    }
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge as unknown as Parameters<Client['getChallengeKeyAuthorization']>[0]);
    const answer = plan.type === 'dns-01' ? await this.dnsAnswer(plan.dns, lineage, name, keyAuthorization) : this.storedAnswer(plan.type, challenge, name, keyAuthorization);
    try {
      await answer.present();
      if (challenge.status === 'pending') await client.completeChallenge(challenge as unknown as Parameters<Client['completeChallenge']>[0]);
      const settled = await pollResource<Authorization>(client, authz.url, ['pending']);
      if (settled.status !== 'valid') {
        const reason = settled.challenges.find((c) => c.error?.detail !== undefined)?.error?.detail;
        throw new Error(`the CA judged the authorization ${settled.status}${reason === undefined ? '' : `: ${reason}`}`);
      }
    } catch (err) {
      if (isProximationError(err)) throw err;
      throw new ProximationError('ERR_ACME_VALIDATION_FAILED', `${plan.type} validation of ${name} failed: ${errorMessage(err)}. ${answer.advice}`, { cause: err });
    } finally {
      await answer.cleanup();
    }
    log.info({ name, challenge: plan.type }, 'ACME authorization valid');
  }

  /** An HTTP-01 or TLS-ALPN-01 answer: the key authorization in the shared challenge store. */
  private storedAnswer(type: StoredChallengeType, challenge: Challenge, name: string, keyAuthorization: string): ChallengeAnswer {
    const { challenges } = this.options;
    const key = type === 'http-01' ? challenge.token : name;
    return {
      present: () => challenges.put(type, key, keyAuthorization),
      cleanup: () => challenges.remove(type, key),
      advice: `The CA must reach this proxy (or another instance sharing the directory) on port ${type === 'http-01' ? 80 : 443}.`,
    };
  }

  /**
   * A DNS-01 answer: journalled, then presented and waited for until every authoritative server has it;
   * removed from DNS, then from the journal. A cleanup that fails is logged and its journal entry kept, so
   * the next order for the lineage tries again.
   */
  private async dnsAnswer(dns: DnsPlan, lineage: string, domain: string, keyAuthorization: string): Promise<ChallengeAnswer> {
    const { log } = this.options;
    const { provider } = dns;
    const propagation = this.propagation();
    const record: TxtRecord = { domain, name: await propagation.challengeTarget(challengeRecordName(domain)), value: keyAuthorization };
    let journalled: string | undefined;
    let presented = false;
    return {
      present: async () => {
        journalled = await this.journal.add(lineage, record, provider.renewalParams());
        presented = true;
        try {
          await provider.present(record);
        } catch (err) {
          // The server said no: nothing was added, and a cleanup with the same key would be refused too.
          if (isProximationError(err) && NOT_APPLIED.has(err.code)) {
            presented = false;
            await this.journal.remove(journalled);
          }
          throw err;
        }
        log.debug({ name: record.name, provider: provider.name }, 'DNS-01 record presented; waiting for the authoritative servers');
        await propagation.waitFor(record);
      },
      cleanup: async () => {
        if (!presented) return;
        try {
          await provider.cleanup(record);
          if (journalled !== undefined) await this.journal.remove(journalled);
        } catch (err) {
          log.error({ name: record.name, provider: provider.name, err: errorMessage(err) }, 'could not remove a DNS-01 record; the next order for the certificate retries');
        }
      },
      advice: `The CA must find TXT ${record.name} through the name's authoritative servers.`,
    };
  }

  /** Removes what an earlier order for `lineage` presented and never cleaned up (a crash between the two). */
  private async cleanLeftovers(lineage: string): Promise<void> {
    const { log } = this.options;
    const { entries, unreadable } = await this.journal.list(lineage);
    for (const key of unreadable) {
      log.warn({ lineage, key }, 'removing an unreadable DNS-01 journal entry; its record, if any, must be removed by hand');
      await this.journal.remove(key);
    }
    for (const entry of entries) {
      const spec = dnsSpecFromParams(new Map(entry.provider));
      if (spec === undefined) {
        log.warn({ lineage, key: entry.key }, 'a DNS-01 journal entry names no provider; removing the entry');
        await this.journal.remove(entry.key);
        continue;
      }
      try {
        await (await this.providers.open(spec)).cleanup(entry.record);
        await this.journal.remove(entry.key);
        log.info({ lineage, name: entry.record.name, provider: spec.type }, 'removed a DNS-01 record an interrupted order left');
      } catch (err) {
        log.error({ lineage, name: entry.record.name, err: errorMessage(err) }, 'could not remove a DNS-01 record an interrupted order left; will retry');
      }
    }
  }

  /** How this order's authorizations are answered: the site's choice, else the lineage's (certbot's terms), else the global one. */
  private async plan(options: IssueOptions): Promise<ChallengePlan> {
    const { settings, store } = this.options;
    const conf = options.lineage === undefined ? undefined : await readRenewalConf(store, options.lineage);
    const lineageSpec = conf === undefined ? undefined : dnsSpecFromParams(conf.params);
    const type = options.challenge ?? (lineageSpec === undefined ? settings.challenge : 'dns-01');
    if (type !== 'dns-01') return { type };
    const spec = lineageSpec ?? settings.dns.provider;
    if (spec === undefined) {
      throw new ProximationError(
        'ERR_DNS_PROVIDER_MISSING',
        'a dns-01 challenge was asked for, but no DNS provider is configured: set PROXIMATION_DNS_PROVIDER (rfc2136, route53 or hook) and its settings.',
      );
    }
    return { type, dns: { provider: await this.providers.open(spec) } };
  }

  private propagation(): PropagationCheck {
    const { propagation } = this.options.settings.dns;
    this.propagationCheck ??= new PropagationCheck({
      ...propagation,
      resolvers: propagation.resolvers ?? systemResolvers(),
    });
    return this.propagationCheck;
  }

  private async checkProfile(): Promise<void> {
    const { profile, directoryUrl } = this.options.settings;
    if (profile === undefined) return;
    const offered = (await this.directory()).meta.profiles;
    if (offered !== undefined && !(profile in offered)) {
      throw new ProximationError(
        'ERR_ACME_PROFILE_UNKNOWN',
        `PROXIMATION_ACME_PROFILE=${profile}: ${directoryUrl} offers the profiles ${Object.keys(offered).join(', ')}.`,
      );
    }
  }

  /** The directory, fetched once (through acme.axios, so with this transport's trust). */
  private directory(): Promise<Directory> {
    this.directoryDoc ??= acme.axios.get<{ meta?: DirectoryMeta; renewalInfo?: unknown }>(this.options.settings.directoryUrl).then(
      (response) => ({
        meta: response.data.meta ?? {},
        renewalInfo: typeof response.data.renewalInfo === 'string' ? response.data.renewalInfo : undefined,
      }),
      (err: unknown) => {
        this.directoryDoc = undefined;
        throw err;
      },
    );
    return this.directoryDoc;
  }

  /** The acme-client client for the stored account, registering the account on first use. */
  private accountClient(): Promise<{ client: Client; account: AcmeAccount }> {
    this.client ??= this.openAccount().catch((err: unknown) => {
      this.client = undefined;
      throw err;
    });
    return this.client;
  }

  private async openAccount(): Promise<{ client: Client; account: AcmeAccount }> {
    const { settings, log } = this.options;
    const account = await this.accounts.findOrCreate(async (keyPem) => {
      const client = this.newClient(keyPem, undefined);
      if ((await this.directory()).meta.externalAccountRequired === true && settings.eab === undefined) {
        throw new ProximationError(
          'ERR_ACME_EAB_REQUIRED',
          `${settings.directoryUrl} requires external account binding: set PROXIMATION_ACME_EAB_KID and PROXIMATION_ACME_EAB_HMAC_KEY to the values the CA gave you.`,
        );
      }
      await client.createAccount({
        termsOfServiceAgreed: true,
        ...(settings.email === undefined ? {} : { contact: [`mailto:${settings.email}`] }),
      });
      const url = client.getAccountUrl();
      log.info({ directory: settings.directoryUrl, account: url }, 'ACME account registered');
      return url;
    });
    log.debug({ directory: settings.directoryUrl, account: account.url, id: account.id }, 'using ACME account');
    return { client: this.newClient(account.keyPem, account.url), account };
  }

  private newClient(keyPem: string, accountUrl: string | undefined): Client {
    const { settings } = this.options;
    return new acme.Client({
      directoryUrl: settings.directoryUrl,
      accountKey: keyPem,
      ...(accountUrl === undefined ? {} : { accountUrl }),
      ...(settings.eab === undefined ? {} : { externalAccountBinding: settings.eab }),
    });
  }

  private renewalParams(account: AcmeAccount, plan: ChallengePlan): [string, ConfValue][] {
    const how: [string, ConfValue][] =
      plan.type === 'dns-01'
        ? [...plan.dns.provider.renewalParams(), ['pref_challs', ['dns-01']]]
        : (() => {
            const hooks = certbotManualHooks(this.options.challenges);
            return [['authenticator', 'manual'], ['manual_auth_hook', hooks.authHook], ['manual_cleanup_hook', hooks.cleanupHook], ['pref_challs', ['http-01']]];
          })();
    return [['account', account.id], ['server', this.options.settings.directoryUrl], ...how, ...keyTypeParams(this.options.settings.keyType)];
  }
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** A new certificate key in PKCS#8 PEM; asynchronous, as an RSA-4096 key takes a second to find. */
async function generateKey(keyType: AcmeKeyType): Promise<string> {
  const pair =
    keyType === 'ecdsa-p256' || keyType === 'ecdsa-p384'
      ? await generateKeyPairAsync('ec', { namedCurve: keyType === 'ecdsa-p256' ? 'P-256' : 'P-384' })
      : await generateKeyPairAsync('rsa', { modulusLength: Number(keyType.slice(4)) });
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}

function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
