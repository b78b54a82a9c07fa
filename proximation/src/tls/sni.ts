/**
 * SNI name → TLS SecureContext, from memory. This is where the certificate side meets the proxy side:
 * the certificate side `set`s a context whenever it has a (new) certificate for a name, and the TLS
 * handshake only looks names up.
 *
 * A name the map does not hold yet (the first handshakes right after start, while certificates are
 * still being loaded in the background) is asked of `resolve` once; concurrent handshakes for that name
 * share the one lookup. `resolve` answers undefined for names that are not served, and the handshake
 * then fails with an unrecognized_name alert: the proxy shows no certificate for a name it does not route.
 */
import tls from 'node:tls';

export interface CertificateKeyPair {
  fullchainPem: string;
  keyPem: string;
}

export function createContext(pair: CertificateKeyPair): tls.SecureContext {
  return tls.createSecureContext({ cert: pair.fullchainPem, key: pair.keyPem });
}

export class SniContexts {
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly pending = new Map<string, Promise<tls.SecureContext | undefined>>();

  constructor(private readonly resolve: (name: string) => Promise<CertificateKeyPair | undefined>) {}

  set(name: string, pair: CertificateKeyPair): void {
    this.contexts.set(name, createContext(pair));
  }

  delete(name: string): void {
    this.contexts.delete(name);
  }

  has(name: string): boolean {
    return this.contexts.has(name);
  }

  readonly SNICallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const name = servername.toLowerCase();
    const context = this.contexts.get(name);
    if (context !== undefined) {
      cb(null, context);
      return;
    }
    this.lookup(name).then(
      (found) => (found === undefined ? cb(new Error(`no certificate for ${name}`)) : cb(null, found)),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  };

  private lookup(name: string): Promise<tls.SecureContext | undefined> {
    let promise = this.pending.get(name);
    if (promise === undefined) {
      promise = this.resolve(name)
        .then((pair) => {
          if (pair === undefined) return undefined;
          // A `set` that raced with this lookup carries the newer certificate.
          const existing = this.contexts.get(name);
          if (existing !== undefined) return existing;
          const created = createContext(pair);
          this.contexts.set(name, created);
          return created;
        })
        .finally(() => this.pending.delete(name));
      this.pending.set(name, promise);
    }
    return promise;
  }
}
