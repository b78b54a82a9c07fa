/**
 * Wildcard hosts (`*.example.com`): the rules beyond hostname syntax, and how one matches.
 *
 * - `wildcardProblem(host)`: for a normalised host starting with `*.`, why it cannot be a site's host:
 *   the part after `*.` is a public suffix (`*.com`, `*.co.uk`: ICANN's section of the Public Suffix
 *   List, through tldts, which ships it), which no CA issues for and which would route a whole
 *   registry's names. Undefined when it is fine (and for plain hosts). Pure.
 * - `wildcardOf(name)`: the wildcard host that would cover `name` (`*.example.com` for a.example.com);
 *   undefined for a single-label name. A wildcard covers exactly one label, as in certificates
 *   (RFC 6125 6.4.3), so b.a.example.com is not covered by `*.example.com`.
 */
import { getPublicSuffix } from 'tldts';

export function isWildcardHost(host: string): boolean {
  return host.startsWith('*.');
}

export function wildcardProblem(host: string): string | undefined {
  if (!isWildcardHost(host)) return undefined;
  const base = host.slice(2);
  if (getPublicSuffix(base) === base) return `"${base}" is a public suffix; a wildcard must be under a registered domain, such as *.example.com`;
  return undefined;
}

export function wildcardOf(name: string): string | undefined {
  const dot = name.indexOf('.');
  return dot === -1 || dot === name.length - 1 ? undefined : `*${name.slice(dot)}`;
}
