/**
 * Hostname rules. Every hostname that comes from outside (routing table, flags, SNI, Host headers)
 * passes through `normalizeHostname` before it is compared, stored or used to build a file path, so a
 * name can never smuggle in `..`, `/`, a port or control characters.
 *
 * Guarantees of `normalizeHostname`: the result is lower case, ASCII (IDN labels converted to punycode),
 * has no trailing dot, consists of 1-63 character labels of [a-z0-9-] that neither start nor end with
 * `-`, and is at most 253 characters long. With `allowWildcard`, the first label may be exactly `*`.
 * Throws ProximationError `ERR_INVALID_HOSTNAME` naming the input, the field and the rule broken.
 *
 * With `refuseAddresses` (the hosts of a site), a name the URL standard reads as an IPv4 address (its
 * last label is a number, such as 127.0.0.1, 10.1 or 0x7f.1) is refused too: sites are routed and
 * certified by DNS name, and an ACME CA would refuse every order for such a name. IPv6 literals never
 * pass (":" and brackets are refused for every name).
 *
 * `inspectHostname` applies the same rules but returns the broken rule instead of throwing (for
 * validators that report errors their own way). `hostnameMatchesPattern` expects both arguments
 * already normalised.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { ProximationError } from './errors.js';

export interface NormalizeHostnameOptions {
  /** Accept `*.example.com` (the whole first label being `*`). */
  allowWildcard?: boolean;
  /** Refuse names that are IPv4 addresses (for site hosts; see above). */
  refuseAddresses?: boolean;
  /** Where the name came from (flag, JSON path, header), for the error message. */
  field?: string;
}

/** The URL standard's "ends in a number": the last label is decimal digits or 0x hex. */
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/;

const ADDRESS_PROBLEM =
  'it is an IP address, and a site is reached by a DNS name that certificates can be issued for; ' +
  'point a DNS name at the address and use that (localhost for tests on this machine)';

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
// Checked on the raw input: domainToASCII would otherwise map some of these (full-width dots, soft
// hyphens) to harmless-looking output, or reject them with no reason we could report.
const RAW_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/[\u0000-\u001f\u007f-\u009f]/, 'it contains a control character'],
  [/\s/u, 'it contains whitespace'],
  [/[/\\]/, 'it contains a slash or backslash (a hostname is not a path or URL)'],
  [/[[\]]/, 'it contains brackets (IP-literal addresses are not hostnames)'],
  [/:/, 'it contains ":" (give the name without a port or scheme)'],
  [/\.\./, 'it contains ".." (an empty label)'],
];

export function normalizeHostname(input: string, options: NormalizeHostnameOptions = {}): string {
  const result = inspectHostname(input, options.allowWildcard === true, options.refuseAddresses === true);
  if ('hostname' in result) return result.hostname;
  const where = options.field === undefined ? '' : ` in ${options.field}`;
  throw new ProximationError(
    'ERR_INVALID_HOSTNAME',
    `Invalid hostname ${JSON.stringify(input)}${where}: ${result.problem}. Use a plain DNS name such as app.example.com.`,
  );
}

/** The normalised name, or the rule `input` breaks (for callers that report errors their own way). */
export function inspectHostname(input: string, allowWildcard: boolean, refuseAddresses = false): { hostname: string } | { problem: string } {
  if (input.length === 0) return { problem: 'it is empty' };
  for (const [pattern, problem] of RAW_RULES) {
    if (pattern.test(input)) return { problem };
  }
  const withoutDot = input.endsWith('.') ? input.slice(0, -1) : input;
  const wildcard = withoutDot.startsWith('*.');
  if (wildcard && !allowWildcard) return { problem: 'wildcards ("*") are not allowed here' };
  const rest = wildcard ? withoutDot.slice(2) : withoutDot;
  if (rest.includes('*')) return { problem: '"*" is only allowed as the whole first label, as in *.example.com' };
  if (rest.length === 0 || rest.startsWith('.') || rest.endsWith('.')) return { problem: 'it has an empty label' };

  // ASCII input skips domainToASCII: the WHATWG host parser would rewrite names such as "0x7f.1"
  // into IPv4 addresses, which is not what the user wrote.
  const ascii = /^[\x00-\x7f]*$/.test(rest) ? rest.toLowerCase() : domainToASCII(rest);
  if (ascii.length === 0) return { problem: 'it is not a valid internationalised domain name' };

  if (refuseAddresses && NUMERIC_LABEL.test(ascii.slice(ascii.lastIndexOf('.') + 1))) return { problem: ADDRESS_PROBLEM };
  const hostname = wildcard ? `*.${ascii}` : ascii;
  if (hostname.length > MAX_NAME_LENGTH) return { problem: `it is longer than ${MAX_NAME_LENGTH} characters` };
  for (const label of ascii.split('.')) {
    if (label.length === 0) return { problem: 'it has an empty label' };
    if (label.length > MAX_LABEL_LENGTH) return { problem: `the label "${label}" is longer than ${MAX_LABEL_LENGTH} characters` };
    if (label.startsWith('-') || label.endsWith('-')) return { problem: `the label "${label}" starts or ends with "-"` };
    if (!LABEL.test(label)) return { problem: `the label "${label}" contains characters other than a-z, 0-9 and "-"` };
    if (label.startsWith('xn--') && !isALabel(label)) return { problem: `the label "${label}" is not valid punycode` };
  }
  return { hostname };
}

/** True if `name` equals `pattern`, or `pattern` is `*.suffix` and `name` is exactly one label plus `.suffix`. */
export function hostnameMatchesPattern(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1);
  if (!name.endsWith(suffix)) return false;
  const label = name.slice(0, -suffix.length);
  return label.length > 0 && !label.includes('.');
}

/**
 * A valid A-label decodes to Unicode and encodes back to itself. Node 20 answers '' for an invalid one,
 * later versions give the label back unchanged, so both are checked.
 */
function isALabel(label: string): boolean {
  const unicode = domainToUnicode(label);
  return unicode !== '' && unicode !== label && domainToASCII(unicode) === label;
}
