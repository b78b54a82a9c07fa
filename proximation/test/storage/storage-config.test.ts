// PROXIMATION_STORAGE and PROXIMATION_STORAGE_PREFIX as loadConfig checks them, beside the letsencrypt directory.
import { describe, expect, it } from 'vitest';
import { isProximationError } from '@proximation/shared';
import { loadConfig } from '../../src/config.js';

function refusal(values: Record<string, string>, env: Record<string, string>): { code: string; message: string } {
  try {
    loadConfig(values, env);
  } catch (err) {
    if (isProximationError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('storage setting', () => {
  it('defaults to the letsencrypt directory, with no certbot copy', () => {
    expect(loadConfig({}, { PROXIMATION_LETSENCRYPT_DIR: '/srv/le' })).toMatchObject({
      letsencryptDir: '/srv/le',
      storage: { backend: 'file', value: '/srv/le', keyPrefix: undefined },
      certbotCopyDir: undefined,
      routesPath: '/srv/le/proximation/routes.json',
    });
  });

  it('takes a storage directory as the letsencrypt directory, and refuses a different one beside it', () => {
    expect(loadConfig({}, { PROXIMATION_STORAGE: '/srv/state' })).toMatchObject({
      letsencryptDir: '/srv/state',
      storage: { backend: 'file', value: '/srv/state' },
      routesPath: '/srv/state/proximation/routes.json',
    });
    expect(loadConfig({}, { PROXIMATION_STORAGE: '/srv/state', PROXIMATION_LETSENCRYPT_DIR: '/srv/state' }).letsencryptDir).toBe('/srv/state');
    expect(refusal({}, { PROXIMATION_STORAGE: '/srv/state', PROXIMATION_LETSENCRYPT_DIR: '/srv/le' })).toEqual({
      code: 'ERR_CONFIG_INVALID',
      message: 'PROXIMATION_STORAGE=/srv/state and PROXIMATION_LETSENCRYPT_DIR=/srv/le name two directories for one state: set one of them.',
    });
  });

  it('opens Redis with a key prefix; a set letsencrypt directory becomes the certbot copy, the password never shows', () => {
    const config = loadConfig({}, { PROXIMATION_STORAGE: 'rediss://:s3cret@cache.internal:6380/2', PROXIMATION_STORAGE_PREFIX: 'prod:edge:', PROXIMATION_LETSENCRYPT_DIR: '/srv/le' });
    expect(config.storage).toEqual({
      backend: 'redis',
      value: 'rediss://:s3cret@cache.internal:6380/2',
      location: 'rediss://:***@cache.internal:6380/2',
      keyPrefix: 'prod:edge:',
      what: 'PROXIMATION_STORAGE',
    });
    expect(config.certbotCopyDir).toBe('/srv/le');
    expect(loadConfig({}, { PROXIMATION_STORAGE: 'redis://127.0.0.1:6379' }).certbotCopyDir).toBeUndefined();
  });

  it('refuses a malformed URL and a key prefix with spaces, naming the setting; as flags, a usage error', () => {
    expect(refusal({}, { PROXIMATION_STORAGE: 'redis://:pw@host:6379/cache' })).toEqual({
      code: 'ERR_STORAGE_URL',
      message: 'PROXIMATION_STORAGE: redis://:***@host:6379/cache is not a Redis URL; use redis://[user:password@]host:port[/db] or rediss://... for TLS (the path may only be a database number).',
    });
    expect(refusal({}, { PROXIMATION_STORAGE: 'http://host:6379' }).code).toBe('ERR_STORAGE_URL');
    expect(refusal({}, { PROXIMATION_STORAGE: 'redis://host', PROXIMATION_STORAGE_PREFIX: 'my fleet:' })).toEqual({
      code: 'ERR_STORAGE_PREFIX',
      message: 'PROXIMATION_STORAGE_PREFIX: "my fleet:" is not a key prefix; use 1 to 64 letters, digits and ":_.-" (no spaces), such as "proximation:prod:".',
    });
    expect(refusal({ 'storage-prefix': 'a b' }, { PROXIMATION_STORAGE: 'redis://host' }).code).toBe('ERR_USAGE');
    expect(refusal({ storage: 'redis//host' }, {}).code).toBe('ERR_USAGE');
    expect(refusal({}, { PROXIMATION_STORAGE_PREFIX: 'prod:' }).message).toContain('PROXIMATION_STORAGE_PREFIX="prod:" is a Redis key prefix, but PROXIMATION_LETSENCRYPT_DIR (default) names a directory');
  });
});
