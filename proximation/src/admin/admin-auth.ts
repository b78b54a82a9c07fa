/**
 * Who may use the admin API: whoever presents the configured bearer token (`Authorization: Bearer
 * <token>`). Without a configured token the API is off for everyone. The token is compared in constant
 * time as SHA-256 digests (so neither its content nor its length leaks through timing), and it appears
 * in no message or log line.
 *
 * `parseAdminToken` (the PROXIMATION_ADMIN_TOKEN setting) and `readAdminTokenFile` (its _FILE
 * variant, read once at start, surrounding whitespace ignored) throw ProximationError
 * ERR_CONFIG_INVALID naming the variable or file and what a token must be.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ProximationError, errorMessage } from '@proximation/shared';

export type AdminAccess = 'allowed' | 'disabled' | 'no-token' | 'wrong-token';

/** Decides a request's access from its Authorization header. */
export type AdminAuthorizer = (authorization: string | undefined) => AdminAccess;

export function adminAuthorizer(token: string | undefined): AdminAuthorizer {
  if (token === undefined) return () => 'disabled';
  const expected = sha256(token);
  return (authorization) => {
    const presented = /^Bearer +(\S+) *$/i.exec(authorization ?? '')?.[1];
    if (presented === undefined) return 'no-token';
    return timingSafeEqual(sha256(presented), expected) ? 'allowed' : 'wrong-token';
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

const TOKEN_RULE = 'a token of 16 to 4096 printable ASCII characters without spaces (make one with: openssl rand -hex 32)';

/** The token itself is never part of the message. */
export function parseAdminToken(text: string, field: string): string {
  if (!/^[\x21-\x7e]{16,4096}$/.test(text)) {
    throw new ProximationError('ERR_CONFIG_INVALID', `${field} is not valid: expected ${TOKEN_RULE}; the value given is not shown.`);
  }
  return text;
}

export function readAdminTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ProximationError('ERR_CONFIG_INVALID', `Cannot read the admin token file ${path} (PROXIMATION_ADMIN_TOKEN_FILE): ${errorMessage(err)}.`, { cause: err });
  }
  return parseAdminToken(text.trim(), `The admin token file ${path} (PROXIMATION_ADMIN_TOKEN_FILE)`);
}
