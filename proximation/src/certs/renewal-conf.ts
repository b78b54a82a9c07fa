/**
 * `renewal/<lineage>.conf`, certbot's record of how a lineage was obtained and is to be renewed, in the
 * configobj format certbot reads and writes.
 *
 * Writing (`writeRenewalConf`): the file certbot 2.1 itself writes after an issuance: `version`,
 * `archive_dir` and the four live paths (absolute), then `[renewalparams]` with the caller's entries in
 * the caller's order. Written atomically (temp file, fsync, rename; 0644 like certbot's), so a reader
 * sees the old or the new file, never a mix. `certbot certificates` lists such a lineage without a
 * warning, and `certbot renew` can use it. The `version` is the certbot release whose format this is:
 * an older certbot only logs that the file is newer than itself.
 *
 * Reading (`readRenewalConf`): any configobj file certbot may have written (comments, quoted and
 * triple-quoted values, lists, nested sections such as `[[webroot_map]]`), into the few fields
 * proximation uses; undefined when the file does not exist.
 *
 * Both go through the certificate store's storage (key `renewal/<lineage>.conf`); the paths written in
 * the file and named in messages are under the store's `configDir`.
 *
 * Throws ProximationError:
 * - ERR_RENEWAL_CONF_INVALID: a file that configobj would not parse either (the message names the file
 *   and line), or a value that cannot be written so that configobj reads it back unchanged.
 * - the storage's errors (ERR_FILE_READ / ERR_FILE_WRITE, ERR_STORAGE_UNAVAILABLE, ERR_LOCK_LOST).
 */
import path from 'node:path';
import { ProximationError, type StorageLock } from '@proximation/shared';
import type { AcmeKeyType } from '../config.js';
import type { CertStore } from './cert-store.js';

/** The certbot release whose renewal-file format is written. */
export const RENEWAL_CONF_VERSION = '2.1.0';

export type ConfValue = string | string[];

export interface ConfSection {
  values: Map<string, ConfValue>;
  sections: Map<string, ConfSection>;
}

/** What proximation needs from a lineage's renewal file. */
export interface RenewalConf {
  file: string;
  /** `[renewalparams]`, as written. */
  params: Map<string, ConfValue>;
  /** The ACME directory URL the lineage was obtained from. */
  server: string | undefined;
  /** The certbot account id (directory name under accounts/<server path>/). */
  account: string | undefined;
  /** The key type, when certbot's key_type/elliptic_curve/rsa_key_size name one proximation can order. */
  keyType: AcmeKeyType | undefined;
}

const KINDS = ['cert', 'privkey', 'chain', 'fullchain'] as const;

export function renewalConfPath(store: CertStore, lineage: string): string {
  // liveDir checks the lineage name, so it cannot smuggle path syntax in here either.
  store.liveDir(lineage);
  return path.join(store.configDir, 'renewal', `${lineage}.conf`);
}

export async function readRenewalConf(store: CertStore, lineage: string): Promise<RenewalConf | undefined> {
  const file = renewalConfPath(store, lineage);
  const bytes = await store.storage.read(`renewal/${lineage}.conf`);
  if (bytes === undefined) return undefined;
  const root = parseConfigObj(bytes.toString('utf8'), file);
  const params = root.sections.get('renewalparams')?.values ?? new Map<string, ConfValue>();
  const text = (key: string): string | undefined => {
    const value = params.get(key);
    return typeof value === 'string' ? value : undefined;
  };
  return { file, params, server: text('server'), account: text('account'), keyType: keyTypeOf(text) };
}

/** Writes the lineage's renewal file; `params` become `[renewalparams]`, in order. */
export async function writeRenewalConf(
  store: CertStore,
  lineage: string,
  params: ReadonlyArray<readonly [string, ConfValue]>,
  options: { fence?: StorageLock } = {},
): Promise<void> {
  const file = renewalConfPath(store, lineage);
  const live = store.liveDir(lineage);
  const line = (key: string, value: ConfValue): string => `${key} = ${serializeValue(value, file, key)}`;
  const text = [
    '# renew_before_expiry = 30 days',
    line('version', RENEWAL_CONF_VERSION),
    line('archive_dir', store.archiveDir(lineage)),
    ...KINDS.map((kind) => line(kind, path.join(live, `${kind}.pem`))),
    '',
    '# Options used in the renewal process',
    '[renewalparams]',
    ...params.map(([key, value]) => line(key, value)),
    '',
  ].join('\n');
  await store.storage.write(`renewal/${lineage}.conf`, text, { mode: 0o644, ...options });
}

/** certbot's renewal parameters for a key type (certbot 2.1 names: key_type, elliptic_curve, rsa_key_size). */
export function keyTypeParams(keyType: AcmeKeyType): [string, string][] {
  switch (keyType) {
    case 'ecdsa-p256':
      return [['key_type', 'ecdsa'], ['elliptic_curve', 'secp256r1']];
    case 'ecdsa-p384':
      return [['key_type', 'ecdsa'], ['elliptic_curve', 'secp384r1']];
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return [['key_type', 'rsa'], ['rsa_key_size', keyType.slice(4)]];
  }
}

/** The key type certbot would use: rsa when key_type is missing (certbot < 1.25), secp256r1 and 2048 by default. */
function keyTypeOf(text: (key: string) => string | undefined): AcmeKeyType | undefined {
  const type = (text('key_type') ?? 'rsa').toLowerCase();
  if (type === 'ecdsa') {
    const curve = text('elliptic_curve') ?? 'secp256r1';
    return curve === 'secp256r1' ? 'ecdsa-p256' : curve === 'secp384r1' ? 'ecdsa-p384' : undefined;
  }
  if (type === 'rsa') {
    const size = text('rsa_key_size') ?? '2048';
    return size === '2048' || size === '3072' || size === '4096' ? `rsa-${size}` : undefined;
  }
  return undefined;
}

// configobj's syntax (configobj 5, which certbot uses); no escapes exist in it.
const SECTION = /^(\[+)\s*(.*?)\s*(\]+)\s*(#.*)?$/;
const KEY_VALUE = /^("[^"]*"|'[^']*'|[^'"=][^=]*?)\s*=\s*(.*)$/;
const TRIPLE = /^('''|""")(.*?)\1\s*(#.*)?$/;
const QUOTED_OR_BARE = /^\s*("[^"]*"|'[^']*'|[^'",#][^,#]*?)?\s*(,|#.*|$)/;

/** Parses configobj text; `source` names the file in errors. */
export function parseConfigObj(text: string, source: string): ConfSection {
  const root: ConfSection = { values: new Map(), sections: new Map() };
  const stack: ConfSection[] = [root];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const fail = (problem: string): never => {
      throw new ProximationError('ERR_RENEWAL_CONF_INVALID', `${source} line ${index + 1}: ${problem}. Fix or remove the file.`);
    };
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const section = SECTION.exec(line);
    if (section !== null) {
      const depth = section[1]!.length;
      if (depth !== section[3]!.length) fail('unbalanced section brackets');
      if (depth > stack.length) fail('a nested section without its parent');
      const name = unquote(section[2]!);
      stack.length = depth;
      const parent = stack[depth - 1]!;
      if (parent.sections.has(name) || parent.values.has(name)) fail(`duplicate section "${name}"`);
      const created: ConfSection = { values: new Map(), sections: new Map() };
      parent.sections.set(name, created);
      stack.push(created);
      return;
    }
    const pair = KEY_VALUE.exec(line);
    if (pair === null) fail('expected "key = value", a [section] or a # comment');
    const key = unquote(pair![1]!.trim());
    const current = stack[stack.length - 1]!;
    if (current.values.has(key) || current.sections.has(key)) fail(`duplicate key "${key}"`);
    current.values.set(key, parseValue(pair![2]!, fail));
  });
  return root;
}

function parseValue(text: string, fail: (problem: string) => never): ConfValue {
  if (text === '') return '';
  const triple = TRIPLE.exec(text);
  if (triple !== null) return triple[2]!;
  if (text.startsWith("'''") || text.startsWith('"""')) fail('multi-line values are not supported');
  const items: string[] = [];
  let rest = text;
  let isList = false;
  for (;;) {
    const match = QUOTED_OR_BARE.exec(rest);
    if (match === null || match[0] === '') fail(`cannot parse the value ${JSON.stringify(text)}`);
    const item = match![1];
    const end = match![2]!;
    if (item !== undefined) items.push(unquote(item.trim()));
    rest = rest.slice(match![0].length);
    if (end !== ',') break;
    isList = true;
    if (rest.trim() === '' || rest.trim().startsWith('#')) break;
  }
  if (!isList) return items[0] ?? '';
  return items;
}

function unquote(text: string): string {
  const first = text[0];
  if (text.length >= 2 && (first === '"' || first === "'") && text.endsWith(first)) return text.slice(1, -1);
  return text;
}

/** The value as configobj reads it back unchanged: bare when that is safe, else in the first quote style that fits. */
function serializeValue(value: ConfValue, file: string, key: string): string {
  if (Array.isArray(value)) {
    const items = value.map((item) => serializeScalar(item, file, key, true));
    return items.length === 1 ? `${items[0]},` : items.join(', ');
  }
  return serializeScalar(value, file, key, false);
}

function serializeScalar(value: string, file: string, key: string, inList: boolean): string {
  if (value === '') return '""';
  const bare = !/^[\s'"]|[\s'"]$|[#,\r\n]/.test(value);
  if (bare) return value;
  if (!/[\r\n]/.test(value)) {
    if (!value.includes('"')) return `"${value}"`;
    if (!value.includes("'")) return `'${value}'`;
    if (!inList) {
      for (const quote of ["'''", '"""']) {
        if (!value.includes(quote) && !value.endsWith(quote[0]!)) return `${quote}${value}${quote}`;
      }
    }
  }
  throw new ProximationError(
    'ERR_RENEWAL_CONF_INVALID',
    `${file}: the value of ${key} (${JSON.stringify(value)}) cannot be written in configobj syntax. Use a path without quotes or line breaks.`,
  );
}
