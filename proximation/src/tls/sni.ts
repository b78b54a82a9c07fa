/**
 * SNI name → TLS SecureContext, from memory. This is where the certificate side meets the proxy side:
 * the certificate side `set`s a context whenever it has a (new) certificate for a name, and the TLS
 * handshake only looks names up.
 *
 * A name the map does not hold yet (the first handshakes right after start, while certificates are
 * still being loaded in the background) is asked of `resolve` once; concurrent handshakes for that name
 * share the one lookup.
 *
 * Certificates are kept as PEM; the SecureContext (tens of KiB each in OpenSSL) is built on a name's
 * first handshake and kept in a bounded least-recently-used cache, so 10,000 routed names cost their
 * PEM text, not 10,000 contexts. `resolve` answers undefined for names that are not served, and the callback
 * then fails with UnrecognizedNameError, which the HTTPS listener turns into an unrecognized_name alert
 * (handshake-alert.ts): the proxy shows no certificate for a name it does not route.
 *
 * A name without a certificate of its own is served the certificate of its wildcard (`*.example.com` for
 * a.example.com) when one is set; `resolve` answers which name (the name or its wildcard) the certificate
 * it found is set under, so a renewed wildcard reaches every name it covers.
 *
 * `covers(servername, host)` says whether the certificate served for an SNI name covers another host,
 * by the certificate's DNS names (a wildcard covers one label under it, RFC 6125 6.4.3): the proxy's
 * 421 check (proxy-handler.ts). It asks after the certificate held for the name now, which is the one
 * served unless it was replaced since the handshake; it also answers for a resumed TLS session, which
 * skips SNICallback. A certificate's names are read once, on the first question about it.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { wildcardOf } from '@proximation/shared';
import { UnrecognizedNameError } from './handshake-alert.js';

export interface CertificateKeyPair {
  fullchainPem: string;
  keyPem: string;
}

export function createContext(pair: CertificateKeyPair): tls.SecureContext {
  return tls.createSecureContext({ cert: pair.fullchainPem, key: pair.keyPem });
}

export const MAX_CACHED_CONTEXTS = 1000;

export class SniContexts {
  private readonly pairs = new Map<string, CertificateKeyPair>();
  /** Least recently used first (Map keeps insertion order; a hit re-inserts). */
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly pending = new Map<string, Promise<tls.SecureContext | undefined>>();
  /** The DNS names (lower case) of each held certificate that has been asked about. */
  private readonly names = new WeakMap<CertificateKeyPair, ReadonlySet<string>>();

  constructor(
    private readonly resolve: (name: string) => Promise<{ name: string; pair: CertificateKeyPair } | undefined>,
    private readonly maxContexts = MAX_CACHED_CONTEXTS,
  ) {}

  set(name: string, pair: CertificateKeyPair): void {
    this.pairs.set(name, { fullchainPem: pair.fullchainPem, keyPem: pair.keyPem });
    this.contexts.delete(name);
  }

  delete(name: string): void {
    this.pairs.delete(name);
    this.contexts.delete(name);
  }

  has(name: string): boolean {
    return this.pairs.has(name);
  }

  /** @param host lower case, without port */
  covers(servername: string, host: string): boolean {
    const name = servername.toLowerCase();
    // SNICallback serves a name only a certificate that covers it.
    if (name === host) return true;
    const wildcard = this.pairs.has(name) ? undefined : wildcardOf(name);
    const pair = this.pairs.get(wildcard ?? name);
    if (pair === undefined) return false;
    const names = this.namesOf(pair);
    const hostWildcard = wildcardOf(host);
    return names.has(host) || (hostWildcard !== undefined && names.has(hostWildcard));
  }

  private namesOf(pair: CertificateKeyPair): ReadonlySet<string> {
    let names = this.names.get(pair);
    if (names === undefined) {
      const san = new X509Certificate(pair.fullchainPem).subjectAltName ?? '';
      names = new Set(san.split(', ').filter((entry) => entry.startsWith('DNS:')).map((entry) => entry.slice(4).toLowerCase()));
      this.names.set(pair, names);
    }
    return names;
  }

  private context(name: string): tls.SecureContext | undefined {
    let context = this.contexts.get(name);
    if (context !== undefined) {
      this.contexts.delete(name);
    } else {
      const pair = this.pairs.get(name);
      if (pair === undefined) return undefined;
      context = createContext(pair);
      if (this.contexts.size >= this.maxContexts) this.contexts.delete(this.contexts.keys().next().value!);
    }
    this.contexts.set(name, context);
    return context;
  }

  readonly SNICallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const name = servername.toLowerCase();
    const wildcard = this.pairs.has(name) ? undefined : wildcardOf(name);
    const context = this.context(wildcard !== undefined && this.pairs.has(wildcard) ? wildcard : name);
    if (context !== undefined) {
      cb(null, context);
      return;
    }
    this.lookup(name).then(
      (found) => (found === undefined ? cb(new UnrecognizedNameError(`no certificate for ${name}`)) : cb(null, found)),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  };

  private lookup(name: string): Promise<tls.SecureContext | undefined> {
    let promise = this.pending.get(name);
    if (promise === undefined) {
      promise = this.resolve(name)
        .then((found) => {
          if (found === undefined) return undefined;
          // A `set` that raced with this lookup carries the newer certificate.
          if (!this.pairs.has(found.name)) this.set(found.name, found.pair);
          return this.context(found.name);
        })
        .finally(() => this.pending.delete(name));
      this.pending.set(name, promise);
    }
    return promise;
  }
}
