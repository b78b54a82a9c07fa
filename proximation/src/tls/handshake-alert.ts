/**
 * Ends a handshake that the SNI callback refuses with a TLS alert, as RFC 8446 6.2 / RFC 6066 3 ask,
 * instead of the bare TCP close Node gives when SNICallback answers an error (curl: SSL_ERROR_SYSCALL,
 * openssl: "unexpected eof"). Node has no API for the alert, so the wrapped callback writes the alert
 * record itself, in plaintext, on the raw TCP socket under the TLS socket, then hands Node the error,
 * which closes the connection. This is sound because SNI is decided while the ClientHello is processed:
 * the server has sent nothing yet, so a plaintext alert is exactly what OpenSSL would send there.
 *
 * Guarantees: `UnrecognizedNameError` → `unrecognized_name` (112), any other error → `internal_error`
 * (80); the callback's success path is untouched. The raw socket is reached through Node's TLS socket,
 * which calls SNICallback as its method (`this`) and keeps the socket it wraps as `_parent` (Node 20 to
 * 26, tested on both): where either is missing the error goes to Node as before, without the alert.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

/** The handshake's name is not served here. */
export class UnrecognizedNameError extends Error {}

const UNRECOGNIZED_NAME = 112;
const INTERNAL_ERROR = 80;

/** A fatal alert record: content type alert (21), record version TLS 1.2 (also TLS 1.3's), length 2, level fatal (2). */
function alertRecord(description: number): Buffer {
  return Buffer.from([21, 3, 3, 0, 2, 2, description]);
}

export function alertingSniCallback(callback: SniCallback): SniCallback {
  return function (this: unknown, servername, cb) {
    const raw = (this as { _parent?: unknown } | undefined)?._parent as Socket | undefined;
    callback(servername, (err, ctx) => {
      if (err === null) {
        cb(null, ctx);
        return;
      }
      if (raw === undefined || typeof raw.write !== 'function' || !raw.writable) {
        cb(err);
        return;
      }
      // Node closes the connection on the error: only once the alert has reached the kernel.
      raw.write(alertRecord(err instanceof UnrecognizedNameError ? UNRECOGNIZED_NAME : INTERNAL_ERROR), () => cb(err));
    });
  };
}
