/**
 * Session ticket keys, rotated. A TLS server hands each client its session state encrypted as a
 * ticket (TLS 1.2 session tickets, TLS 1.3 resumption tickets), so a returning client resumes with an
 * abbreviated handshake. Node creates the server's ticket key set at random and never changes it: left
 * alone, one key would live as long as the process (weeks on ECS), and whoever reads it from memory
 * could decrypt every recorded TLS 1.2 session of that time, since a TLS 1.2 ticket carries the
 * session's master secret. (TLS 1.3 resumption always adds a fresh ECDHE exchange, which OpenSSL
 * requires by default, so a stolen key does not decrypt TLS 1.3 traffic.)
 *
 * `rotateTicketKeys` replaces the key set with fresh random bytes every `intervalMs`, until the
 * returned function is called; its timer does not keep the process alive. The key set belongs to the
 * server's own context, which OpenSSL uses for tickets whatever context SNICallback picked for the
 * connection, so one key set serves, and one rotation covers, every SNI name.
 *
 * With several worker processes the primary rotates (`holder` broadcasts the keys) and every worker
 * installs the same set, so a session resumes on whichever worker the next connection reaches.
 *
 * Node keeps one key set only (no older keys for decryption), so a ticket issued before a rotation no
 * longer resumes after it: that client makes one full handshake and gets a new ticket. Tickets are
 * announced with a lifetime of one rotation interval (SESSION_LIFETIME_S, the server's
 * sessionTimeout), so clients do not keep them much longer than they can be used.
 */
import { randomBytes } from 'node:crypto';

export const TICKET_KEY_ROTATION_MS = 60 * 60 * 1000;
export const SESSION_LIFETIME_S = TICKET_KEY_ROTATION_MS / 1000;

/** Node's key set: 16 bytes of key name, 16 of HMAC key, 16 of AES key. */
const TICKET_KEYS_BYTES = 48;

/** Whoever holds the key set: a `tls.Server`, or the primary handing keys to its workers. */
export interface TicketKeyHolder {
  setTicketKeys(keys: Buffer): void;
}

export function newTicketKeys(): Buffer {
  return randomBytes(TICKET_KEYS_BYTES);
}

export function rotateTicketKeys(holder: TicketKeyHolder, intervalMs: number): () => void {
  const timer = setInterval(() => holder.setTicketKeys(newTicketKeys()), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
