/**
 * The lineage (certbot's certificate name: the directory under live/, archive/, renewal/) of a routed
 * host. A plain host is its own lineage name; a wildcard host `*.example.com` is `_wildcard.example.com`:
 * `*` makes a poor directory name for shells and backups, certbot's own choice (`example.com`) would
 * collide with the lineage of the host example.com, and `_` appears in no hostname, so the two can never
 * meet. Pure; no checks (the store checks lineage names before they become paths).
 */
const WILDCARD_PREFIX = '_wildcard.';

export function lineageName(host: string): string {
  return host.startsWith('*.') ? `${WILDCARD_PREFIX}${host.slice(2)}` : host;
}

/** The hostname a lineage name stands for, without any certbot `-NNNN` suffix handling. */
export function lineageHost(lineage: string): string {
  return lineage.startsWith(WILDCARD_PREFIX) ? `*.${lineage.slice(WILDCARD_PREFIX.length)}` : lineage;
}
