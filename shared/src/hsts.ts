/**
 * HTTP Strict Transport Security (RFC 6797) as a site opts into it in the routing table: the policy's
 * rules, its normal form and the header value it becomes. Pure functions.
 *
 * Rules (`hstsProblems`, used by the routing table's schema and by the operations alike, so a file
 * edited by hand and a change sent by deploy or the admin API are judged the same): `maxAge` is a whole
 * number of seconds, 0 or more (0 tells browsers to forget the policy); `preload` requires
 * `includeSubDomains` and a `maxAge` of at least one year, which hstspreload.org requires before it
 * lists a domain. `normalizeHsts` throws ProximationError `ERR_INVALID_HSTS` naming the site and field
 * and saying what to change; the other functions never throw.
 */
import { ProximationError } from './errors.js';

export interface HstsPolicy {
  /** Seconds browsers keep to HTTPS for the host after seeing the header. */
  readonly maxAge: number;
  readonly includeSubDomains?: boolean;
  readonly preload?: boolean;
}

/** One year, the least max-age hstspreload.org accepts. */
export const PRELOAD_MIN_MAX_AGE = 31_536_000;

export interface HstsProblem {
  readonly field: 'maxAge' | 'preload';
  readonly message: string;
}

/** What the fields are called where the policy came from: the routing table's keys, or a CLI's flags. */
export interface HstsFieldNames {
  readonly maxAge: string;
  readonly includeSubDomains: string;
  readonly preload: string;
}

const TABLE_NAMES: HstsFieldNames = { maxAge: 'maxAge', includeSubDomains: 'includeSubDomains', preload: 'preload' };

/** The rules `policy` breaks; each message names the other fields by `names`. */
export function hstsProblems(policy: HstsPolicy, names: HstsFieldNames = TABLE_NAMES): HstsProblem[] {
  const problems: HstsProblem[] = [];
  if (!Number.isSafeInteger(policy.maxAge) || policy.maxAge < 0) {
    problems.push({
      field: 'maxAge',
      message: 'must be a whole number of seconds, 0 or more, such as 31536000 (one year); 0 tells browsers to forget the policy',
    });
  }
  if (policy.preload === true && policy.includeSubDomains !== true) {
    problems.push({
      field: 'preload',
      message: `requires ${names.includeSubDomains} (hstspreload.org lists only domains whose policy covers their subdomains); set ${names.includeSubDomains} or drop ${names.preload}`,
    });
  }
  if (policy.preload === true && policy.maxAge < PRELOAD_MIN_MAX_AGE) {
    problems.push({
      field: 'preload',
      message: `requires a ${names.maxAge} of at least ${names === TABLE_NAMES ? PRELOAD_MIN_MAX_AGE : '1y'} (one year, as hstspreload.org requires); raise ${names.maxAge} or drop ${names.preload}`,
    });
  }
  return problems;
}

/** The policy with only the flags that are on, after checking it; `site` names it in the error. */
export function normalizeHsts(policy: HstsPolicy, site: string): HstsPolicy {
  const problems = hstsProblems(policy);
  if (problems.length > 0) {
    const described = problems.map((p) => `${p.field} ${p.message}`).join('; ');
    throw new ProximationError('ERR_INVALID_HSTS', `Invalid HSTS setting for site "${site}": ${described}.`);
  }
  return {
    maxAge: policy.maxAge,
    ...(policy.includeSubDomains === true ? { includeSubDomains: true } : {}),
    ...(policy.preload === true ? { preload: true } : {}),
  };
}

/** Whether two policies send the same header (an absent flag is an off one). */
export function sameHsts(a: HstsPolicy | undefined, b: HstsPolicy | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.maxAge === b.maxAge && (a.includeSubDomains === true) === (b.includeSubDomains === true) && (a.preload === true) === (b.preload === true);
}

/** The `Strict-Transport-Security` value, such as `max-age=31536000; includeSubDomains`. */
export function hstsHeaderValue(policy: HstsPolicy): string {
  return `max-age=${policy.maxAge}${policy.includeSubDomains === true ? '; includeSubDomains' : ''}${policy.preload === true ? '; preload' : ''}`;
}
