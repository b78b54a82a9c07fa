import { describe, expect, it } from 'vitest';
import { errorBody, errorFromBody, parseChangeRequest, parseChangeResponse, routingTableETag } from '../src/admin-api.js';
import { ProximationError } from '../src/errors.js';
import { HealthCheckFailedError } from '../src/health-check.js';
import { addSite, emptyRoutingTable } from '../src/routing-table.js';

describe('parseChangeRequest', () => {
  it('accepts every operation, with and without a health check', () => {
    const changes = [
      { op: 'addSite', site: 'dev', hosts: ['dev.example.com'], tagPrefix: 'devbuild-' },
      { op: 'removeSite', site: 'dev' },
      { op: 'addSite', site: 'dev', hosts: ['dev.example.com'], hsts: { maxAge: 31_536_000, includeSubDomains: true, preload: true } },
      { op: 'setHsts', site: 'dev', hsts: { maxAge: 0 } },
      { op: 'setHsts', site: 'dev', hsts: null },
      { op: 'registerVersion', site: 'dev', version: 'v1', upstreams: ['http://a'], activate: true, replace: false, join: true, guard: { activeBefore: null } },
      { op: 'activateVersion', site: 'dev', version: 'v1', guard: { activeBefore: 'v0', checkedUpstreams: [] } },
      { op: 'rollback', site: 'dev' },
      { op: 'removeVersion', site: 'dev', version: 'v1' },
      { op: 'pruneVersions', site: 'dev', keep: 0 },
    ];
    for (const change of changes) expect(parseChangeRequest({ change }, 'test')).toEqual({ change });
    const checked = { change: changes[3], healthCheck: { path: '/healthz?deep=1', timeoutMs: 30_000 } };
    expect(parseChangeRequest(checked, 'test')).toEqual(checked);
  });

  it('checks the shape of an HSTS change, leaving its rules to the operation', () => {
    expect(() => parseChangeRequest({ change: { op: 'setHsts', site: 'dev' } }, 'x')).toThrow('change.hsts: required field is missing');
    expect(() => parseChangeRequest({ change: { op: 'setHsts', site: 'dev', hsts: { maxAge: '1y' } } }, 'x')).toThrow('change.hsts.maxAge: expected a number (found "1y")');
    expect(parseChangeRequest({ change: { op: 'setHsts', site: 'dev', hsts: { maxAge: -1, preload: true } } }, 'x').change).toEqual({ op: 'setHsts', site: 'dev', hsts: { maxAge: -1, preload: true } });
  });

  it('names every wrong field, up to three', () => {
    expect(() => parseChangeRequest({ change: { op: 'addSite', site: 7, hosts: 'a.com' }, extra: 1, healthCheck: { path: '/', timeoutMs: 0 } }, 'POST /x')).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_REQUEST',
        message:
          'Invalid change request (POST /x): change.site: expected a string (found 7); change.hosts: expected an array (found "a.com"); ' +
          'healthCheck.timeoutMs: must be at least 1 (found 0) (and 1 more problem). Send {"change": {"op": ..., ...}, "healthCheck"?: {"path", "timeoutMs"}}.',
      }),
    );
    expect(() => parseChangeRequest({ change: { op: 'rollback', site: 'dev' }, healthCheck: { path: '/', timeoutMs: 3_600_001 } }, 'x')).toThrow(
      'healthCheck.timeoutMs: must be at most 3600000 (1h)',
    );
  });
});

describe('responses', () => {
  it('carries an error, and the results of a failed health check, both ways', () => {
    const plain = errorFromBody(JSON.parse(JSON.stringify(errorBody(new ProximationError('ERR_UNKNOWN_SITE', 'Unknown site "x".')))));
    expect(plain).toBeInstanceOf(ProximationError);
    expect(plain).toMatchObject({ code: 'ERR_UNKNOWN_SITE', message: 'Unknown site "x".' });
    expect(plain).not.toBeInstanceOf(HealthCheckFailedError);
    const results = [{ upstream: 'http://a', healthy: false, attempts: 2, outcome: 'answered 500' }];
    const failed = errorFromBody(JSON.parse(JSON.stringify(errorBody(new HealthCheckFailedError('Did not activate dev/v2: ...', results)))));
    expect(failed).toBeInstanceOf(HealthCheckFailedError);
    expect(failed).toMatchObject({ code: 'ERR_HEALTH_CHECK_FAILED', results });
    for (const notAnError of [null, 'text', { error: 'x' }, { error: { code: 'lower', message: 'm' } }]) expect(errorFromBody(notAnError)).toBeUndefined();
  });

  it('validates the table of a change response, and names what else is wrong', () => {
    const table = addSite(emptyRoutingTable(), { name: 'dev', hosts: ['dev.example.com'] });
    expect(parseChangeResponse({ table, changed: true, healthChecked: [], later: 'ignored' }, 'http://p/api')).toEqual({ table, changed: true, healthChecked: [] });
    expect(() => parseChangeResponse({ table, changed: 'yes', healthChecked: [] }, 'http://p/api')).toThrow(
      expect.objectContaining({ code: 'ERR_PROXY_RESPONSE', message: 'http://p/api answered with an unexpected body: changed: expected true or false (found "yes").' }),
    );
    expect(() => parseChangeResponse({ table: { ...table, schemaVersion: 2 }, changed: true, healthChecked: [] }, 'http://p/api')).toThrow(
      expect.objectContaining({ code: 'ERR_ROUTES_NEWER_SCHEMA' }),
    );
  });

  it('quotes the generation as the ETag', () => {
    expect(routingTableETag(12)).toBe('"12"');
  });
});
