import { expect, it } from 'vitest';
import { limitKey } from '../../src/proxy/client-limits.js';

it('counts an IPv4 client by its address and an IPv6 client by its /64, however the address is written', () => {
  expect(limitKey('203.0.113.7')).toBe('203.0.113.7');
  const sameSubnet = ['2001:db8:0:1::5', '2001:0DB8:0000:0001:abcd:ef01:2345:6789', '2001:db8:0:1:ffff::'];
  expect(new Set(sameSubnet.map(limitKey))).toEqual(new Set(['2001:db8:0:1::/64']));
  expect(limitKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
  expect(limitKey('2001:db8:0:2::1')).not.toBe(limitKey('2001:db8:0:1::1'));
});
