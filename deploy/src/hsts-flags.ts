/**
 * HSTS as deploy commands take it: `--max-age <duration>|off` with `--include-subdomains` and
 * `--preload` (`site hsts`), and the same flags with an `hsts-` prefix on `site add`.
 * `hstsFromFlags` returns the policy, null for off, or undefined when no HSTS flag was given. A
 * malformed duration, a part of a second, a flag that needs a max-age, and a policy that breaks the
 * rules of HSTS (preload needs includeSubDomains and a year: the routing table's own rules, worded
 * with the flags as the command spells them) are usage errors.
 */
import { hstsProblems, type HstsPolicy } from '@proximation/shared';
import { durationFlag, usageError } from './command-line.js';

export const HSTS_OPTIONS = {
  'max-age': { type: 'string' },
  'include-subdomains': { type: 'boolean' },
  preload: { type: 'boolean' },
} as const;

export const SITE_ADD_HSTS_OPTIONS = {
  'hsts-max-age': { type: 'string' },
  'hsts-include-subdomains': { type: 'boolean' },
  'hsts-preload': { type: 'boolean' },
} as const;

/** The flags' values, and their names as the command spells them (for messages). */
export interface HstsFlags {
  maxAge: { name: string; value: string | undefined };
  includeSubDomains: { name: string; value: boolean | undefined };
  preload: { name: string; value: boolean | undefined };
}

export function hstsFromFlags(flags: HstsFlags, command: string): HstsPolicy | null | undefined {
  const { maxAge, includeSubDomains, preload } = flags;
  const extra = [includeSubDomains, preload].find((flag) => flag.value === true);
  if (maxAge.value === undefined) {
    if (extra !== undefined) throw usageError(`${extra.name} needs ${maxAge.name}, such as ${maxAge.name} 1y.`, command);
    return undefined;
  }
  if (maxAge.value === 'off') {
    if (extra !== undefined) throw usageError(`${maxAge.name} off sends no header, so ${extra.name} has nothing to apply to; leave it out.`, command);
    return null;
  }
  const ms = durationFlag(maxAge.value, maxAge.name, command);
  if (ms % 1000 !== 0) {
    throw usageError(`Invalid ${maxAge.name} ${JSON.stringify(maxAge.value)}: HSTS max-age counts whole seconds; give such as 1y, 180d, 1h or 0s.`, command);
  }
  const policy = {
    maxAge: ms / 1000,
    ...(includeSubDomains.value === true ? { includeSubDomains: true } : {}),
    ...(preload.value === true ? { preload: true } : {}),
  };
  const names = { maxAge: maxAge.name, includeSubDomains: includeSubDomains.name, preload: preload.name };
  const problems = hstsProblems(policy, names);
  if (problems.length > 0) throw usageError(`${problems.map((p) => `${names[p.field]} ${p.message}`).join('; ')}.`, command);
  return policy;
}
