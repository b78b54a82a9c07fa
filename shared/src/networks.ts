/**
 * Client networks written as addresses or CIDR blocks (`10.0.0.0/16`, `fd00::/8`, `192.0.2.7`), IPv4 and
 * IPv6: parsing one (`parseNetwork`: its normal form, or undefined for anything else) and matching
 * addresses against a list (`networkMatcher`: an IPv4 peer that Node reports as `::ffff:a.b.c.d` matches
 * its IPv4 block). Pure; the matcher answers from memory.
 */
import net from 'node:net';

export interface Network {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export function parseNetwork(entry: string): Network | undefined {
  const [address = '', prefixText, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family };
}

export function networkMatcher(networks: readonly Network[]): (address: string) => boolean {
  const blocks = new net.BlockList();
  for (const n of networks) blocks.addSubnet(n.address, n.prefix, n.family);
  return (address) => {
    if (networks.length === 0) return false;
    const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    const family = net.isIPv4(plain) ? 'ipv4' : net.isIPv6(plain) ? 'ipv6' : undefined;
    return family !== undefined && blocks.check(plain, family);
  };
}
