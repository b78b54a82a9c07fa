/**
 * Reads the ALPN protocols a TLS client offers from the first bytes of the connection, before TLS
 * starts: Node's SNICallback, where the certificate is chosen, is not told the client's ALPN list.
 *
 * `inspectClientHello(bytes)` looks at what has arrived so far:
 * - `more`: the first record is not complete yet; call again with more bytes.
 * - `hello`: a ClientHello, with its ALPN protocol names (empty when it has no ALPN extension).
 * - `other`: anything else: not TLS, not a ClientHello, malformed, or a ClientHello fragmented over
 *   several records (legal but unusual; the ACME CAs' clients send one record). The caller hands such
 *   connections to the TLS server unchanged, which deals with them as it always would.
 * It never throws, reads at most MAX_CLIENT_HELLO_RECORD bytes and never looks past the first record.
 */

const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const ALPN_EXTENSION = 0x0010;
const RECORD_HEADER = 5;
/** A TLS record's payload is at most 2^14 bytes (RFC 8446 5.1). */
export const MAX_CLIENT_HELLO_RECORD = RECORD_HEADER + 16_384;

export type ClientHelloInspection = { kind: 'more' } | { kind: 'other' } | { kind: 'hello'; alpn: string[] };

const OTHER = { kind: 'other' } as const;
const MORE = { kind: 'more' } as const;

export function inspectClientHello(bytes: Buffer): ClientHelloInspection {
  if (bytes.length === 0) return MORE;
  if (bytes[0] !== HANDSHAKE_RECORD) return OTHER;
  if (bytes.length < RECORD_HEADER) return MORE;
  const recordLength = bytes.readUInt16BE(3);
  if (RECORD_HEADER + recordLength > MAX_CLIENT_HELLO_RECORD) return OTHER;
  if (bytes.length < RECORD_HEADER + recordLength) return MORE;
  const reader = new Reader(bytes.subarray(RECORD_HEADER, RECORD_HEADER + recordLength));
  if (reader.u8() !== CLIENT_HELLO) return OTHER;
  const hello = reader.sub(reader.u24());
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  hello.skip(hello.u16()); // cipher_suites
  hello.skip(hello.u8()); // legacy_compression_methods
  if (hello.failed) return OTHER;
  if (hello.remaining === 0) return { kind: 'hello', alpn: [] };
  const extensions = hello.sub(hello.u16());
  let alpn: string[] = [];
  while (!extensions.failed && extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (type !== ALPN_EXTENSION) continue;
    const list = data.sub(data.u16());
    alpn = [];
    while (!list.failed && list.remaining > 0) alpn.push(list.bytes(list.u8()).toString('latin1'));
    if (list.failed || data.failed) return OTHER;
  }
  return extensions.failed || hello.failed ? OTHER : { kind: 'hello', alpn };
}

/** Bounds-checked big-endian reads; a read past the end sets `failed` and yields zeros. */
class Reader {
  private offset = 0;
  failed = false;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private take(n: number): Buffer {
    if (this.failed || n > this.remaining) {
      this.failed = true;
      return Buffer.alloc(0);
    }
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  u8(): number {
    return this.take(1)[0] ?? 0;
  }

  u16(): number {
    const b = this.take(2);
    return b.length === 2 ? b.readUInt16BE(0) : 0;
  }

  u24(): number {
    const b = this.take(3);
    return b.length === 3 ? b.readUIntBE(0, 3) : 0;
  }

  skip(n: number): void {
    this.take(n);
  }

  bytes(n: number): Buffer {
    return this.take(n);
  }

  /** A reader over the next `n` bytes; a short buffer fails both. */
  sub(n: number): Reader {
    const part = new Reader(this.take(n));
    part.failed = this.failed;
    return part;
  }
}
