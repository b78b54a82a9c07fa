import { describe, expect, it } from 'vitest';
import {
  addSite,
  applyRoutingTableChange,
  clockFrom,
  deregisterUpstreams,
  emptyRoutingTable,
  parseRoutingTable,
  pruneExpiredMembers,
  registerVersion,
  serializeRoutingTable,
  type RoutingTable,
} from '../src/index.js';

const T0 = Date.parse('2026-12-01T00:00:00.000Z');
const A = 'http://10.0.0.1:8080';
const B = 'http://10.0.0.2:8080';

function withMembers(): RoutingTable {
  const table = addSite(emptyRoutingTable(), { name: 'app', hosts: ['app.example.com'] });
  const one = registerVersion(table, { site: 'app', version: 'v1', upstreams: [A], registeredAt: new Date(T0), activate: true, lease: { identity: 'task-a', leaseMs: 10_000 } });
  return registerVersion(one, { site: 'app', version: 'v1', upstreams: [B], registeredAt: new Date(T0), activate: true, join: true, lease: { identity: 'task-b', leaseMs: 10_000 } });
}

describe('leased members in the routing table', () => {
  it('round-trips members through the file format', () => {
    const table = withMembers();
    const parsed = parseRoutingTable(serializeRoutingTable(table), 'routes.json');
    expect(parsed.sites[0]!.versions[0]!.members).toEqual([
      { upstream: A, identity: 'task-a', leaseMs: 10_000, joinedAt: new Date(T0).toISOString() },
      { upstream: B, identity: 'task-b', leaseMs: 10_000, joinedAt: new Date(T0).toISOString() },
    ]);
  });

  it('prunes by the latest renewal of the same identity only, and a version may end with no upstream', () => {
    const table = withMembers();
    const renewed = clockFrom([{ site: 'app', version: 'v1', upstream: A, identity: 'task-a', renewedAt: new Date(T0 + 8_000).toISOString() }, { site: 'app', version: 'v1', upstream: B, identity: 'someone-else', renewedAt: new Date(T0 + 8_000).toISOString() }], T0 + 12_000);
    const pruned = pruneExpiredMembers(table, renewed);
    expect(pruned.sites[0]!.versions[0]).toMatchObject({ upstreams: [A], members: [{ upstream: A }] });
    const later = pruneExpiredMembers(pruned, { now: T0 + 30_000, renewals: new Map() });
    expect(later.sites[0]!.versions[0]).toMatchObject({ upstreams: [], members: [] });
    expect(parseRoutingTable(serializeRoutingTable(later), 'routes.json').sites[0]!.versions[0]!.upstreams).toEqual([]);
    expect(pruneExpiredMembers(table, { now: T0 + 1_000, renewals: new Map() })).toBe(table);
  });

  it('refuses an address held by a live member of another identity, takes it over once that lease ran out', () => {
    const table = withMembers();
    const change = { op: 'registerVersion', site: 'app', version: 'v2', upstreams: [A], activate: false, lease: { identity: 'task-c', leaseMs: 10_000 } } as const;
    expect(() => applyRoutingTableChange(table, change, new Date(T0 + 1_000), undefined, { now: T0 + 1_000, renewals: new Map() })).toThrow(/registered by task-a, whose lease is still running/);
    expect(() => applyRoutingTableChange(table, change, new Date(T0 + 1_000))).toThrow(expect.objectContaining({ code: 'ERR_MEMBER_IDENTITY' }));
    const taken = applyRoutingTableChange(table, change, new Date(T0 + 20_000), undefined, { now: T0 + 20_000, renewals: new Map() });
    // The write that takes it over also prunes the expired members of v1.
    expect(taken.sites[0]!.versions.map((v) => [v.name, v.upstreams])).toEqual([['v1', []], ['v2', [A]]]);
  });

  it('deregisters a member only for its own identity, and leaving twice changes nothing', () => {
    const table = withMembers();
    expect(() => deregisterUpstreams(table, { site: 'app', version: 'v1', upstreams: [A], identity: 'task-b' })).toThrow(/registered by task-a/);
    const left = deregisterUpstreams(table, { site: 'app', version: 'v1', upstreams: [A], identity: 'task-a' });
    expect(left.sites[0]!.versions[0]).toMatchObject({ upstreams: [B], members: [{ upstream: B }] });
    expect(deregisterUpstreams(left, { site: 'app', version: 'v1', upstreams: [A], identity: 'task-a' })).toBe(left);
  });

  it('rejects malformed members in a file, naming the path', () => {
    const table = JSON.parse(serializeRoutingTable(withMembers()));
    table.sites[0].versions[0].members[0].upstream = 'http://10.9.9.9:1';
    expect(() => parseRoutingTable(JSON.stringify(table), 'routes.json')).toThrow(/sites\[0\]\.versions\[0\]\.members\[0\]\.upstream.*one of the version's upstreams/);
    table.sites[0].versions[0].members[0].leaseMs = 1000;
    expect(() => parseRoutingTable(JSON.stringify(table), 'routes.json')).toThrow(/leaseMs/);
    const plain = JSON.parse(serializeRoutingTable(withMembers()));
    delete plain.sites[0].versions[0].members;
    plain.sites[0].versions[0].upstreams = [];
    expect(() => parseRoutingTable(JSON.stringify(plain), 'routes.json')).toThrow(/a version needs at least one upstream/);
  });
});
