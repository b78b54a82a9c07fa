import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertStore, type CertificateFiles, type LoadedCertificate } from '../../src/certs/cert-store.js';
import { LocalCa } from '../../src/certs/local-ca.js';
import { distModule, finished, startNode, withTempDir } from './helpers.js';

const KINDS = ['cert', 'chain', 'fullchain', 'privkey'];

let caDir: string;
let ca: LocalCa;
let issued: CertificateFiles[];

// One CA and a few certificates for all tests: issuing is the slow part.
beforeAll(async () => {
  caDir = await mkdtemp(join(tmpdir(), 'proximation-certs-ca-'));
  ca = await LocalCa.open(caDir);
  issued = await Promise.all([1, 2, 3, 4].map((n) => ca.issue(['example.test', `www${n}.example.test`])));
});
afterAll(() => rm(caDir, { recursive: true, force: true }));

function modeOf(stats: { mode: number }): number {
  return stats.mode & 0o777;
}

/** The loaded pair is one of the issued ones, whole: certificate, chain and matching key. */
function expectConsistent(loaded: LoadedCertificate | undefined): number {
  expect(loaded).toBeDefined();
  const index = issued.findIndex((files) => files.certPem === loaded!.certPem);
  expect(index).toBeGreaterThanOrEqual(0);
  expect(loaded!.keyPem).toBe(issued[index]!.keyPem);
  expect(loaded!.fullchainPem).toBe(loaded!.certPem + loaded!.chainPem);
  expect(new X509Certificate(loaded!.certPem).checkPrivateKey(createPrivateKey(loaded!.keyPem))).toBe(true);
  return index;
}

describe('CertStore', () => {
  it('writes a lineage in certbot layout and reads it back', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(join(dir, 'letsencrypt'));
      const files = issued[0]!;
      expect(await store.write('example.test', files)).toEqual({ version: 1 });

      const loaded = await store.read('example.test');
      const leaf = new X509Certificate(files.certPem);
      expect(loaded).toEqual({
        lineage: 'example.test',
        certPem: files.certPem,
        chainPem: ca.rootPem,
        fullchainPem: files.certPem + ca.rootPem,
        keyPem: files.keyPem,
        names: ['example.test', 'www1.example.test'],
        notBefore: new Date(leaf.validFrom),
        notAfter: new Date(leaf.validTo),
        issuer: new X509Certificate(ca.rootPem).subject,
        serialNumber: leaf.serialNumber.toLowerCase().replace(/^0+/, ''),
      });
      expect(Math.round((loaded!.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(90);
    }));

  it('reports the DNS names in lower case', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      await store.write('example.test', await ca.issue(['WWW.Example.TEST', 'example.test']));
      expect((await store.read('example.test'))?.names).toEqual(['www.example.test', 'example.test']);
    }));

  it('adds a version per write, links live/ relatively into archive/, and keeps keys private', () =>
    withTempDir(async (dir) => {
      const configDir = join(dir, 'letsencrypt');
      const store = new CertStore(configDir);
      expect(await store.write('example.test', issued[0]!)).toEqual({ version: 1 });
      expect(await store.write('example.test', issued[1]!)).toEqual({ version: 2 });
      expectConsistent(await store.read('example.test'));
      expect((await store.read('example.test'))?.certPem).toBe(issued[1]!.certPem);

      const archive = join(configDir, 'archive', 'example.test');
      const live = join(configDir, 'live', 'example.test');
      expect(store.archiveDir('example.test')).toBe(archive);
      expect(store.liveDir('example.test')).toBe(live);
      expect((await readdir(archive)).sort()).toEqual(
        [1, 2].flatMap((n) => KINDS.map((kind) => `${kind}${n}.pem`)).sort(),
      );
      expect((await readdir(live)).sort()).toEqual(KINDS.map((kind) => `${kind}.pem`).sort());
      for (const kind of KINDS) {
        expect((await lstat(join(live, `${kind}.pem`))).isSymbolicLink()).toBe(true);
        expect(await readlink(join(live, `${kind}.pem`))).toBe(`../../archive/example.test/${kind}2.pem`);
        expect(modeOf(await stat(join(archive, `${kind}2.pem`)))).toBe(kind === 'privkey' ? 0o600 : 0o644);
      }
      for (const path of [join(configDir, 'live'), join(configDir, 'archive'), live, archive]) {
        expect(modeOf(await stat(path))).toBe(0o700);
      }
      const [cert, chain, fullchain] = await Promise.all(
        ['cert', 'chain', 'fullchain'].map((kind) => readFile(join(live, `${kind}.pem`))),
      );
      expect(fullchain!.equals(Buffer.concat([cert!, chain!]))).toBe(true);

      // Versions continue after whatever is already in the archive, certbot's files included.
      await writeFile(join(archive, 'privkey7.pem'), 'left by certbot');
      expect(await store.write('example.test', issued[2]!)).toEqual({ version: 8 });
    }));

  it('adds the final newline a PEM block needs so that fullchain still parses', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      const files = issued[0]!;
      await store.write('example.test', {
        certPem: files.certPem.trimEnd(),
        chainPem: files.chainPem.trimEnd(),
        keyPem: files.keyPem.trimEnd(),
      });
      expectConsistent(await store.read('example.test'));
    }));

  it('lists lineage directories, certbot-suffixed ones included, and nothing else', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      expect(await store.list()).toEqual([]);
      await store.write('b.example.test', issued[0]!);
      await store.write('a.example.test', issued[1]!);
      // A lineage is a live/ directory with something in it (an empty one holds no certificate to read).
      for (const name of ['a.example.test-0001', 'Not A Lineage']) {
        await mkdir(join(dir, 'live', name));
        await writeFile(join(dir, 'live', name, 'README'), 'certbot explains the files here');
      }
      await writeFile(join(dir, 'live', 'README'), 'certbot explains the layout here');
      expect(await store.list()).toEqual(['a.example.test', 'a.example.test-0001', 'b.example.test']);
    }));

  it('returns undefined for a lineage that does not exist', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      expect(await store.read('example.test')).toBeUndefined();
      await store.write('other.example.test', issued[0]!);
      expect(await store.read('example.test')).toBeUndefined();
      expect(await store.read('example.test-0001')).toBeUndefined();
    }));

  it('rejects lineage names that are not normalised hostnames before touching the disk', () =>
    withTempDir(async (dir) => {
      const configDir = join(dir, 'letsencrypt');
      const store = new CertStore(configDir);
      for (const name of ['../x', 'a/b', '..', '.', '', 'a\\b', '*.example.test', 'Example.test', 'example.test.']) {
        const rejected = { code: 'ERR_CERT_LINEAGE_NAME_INVALID', message: expect.stringContaining(JSON.stringify(name)) };
        await expect(store.write(name, issued[0]!), name).rejects.toMatchObject(rejected);
        await expect(store.read(name), name).rejects.toMatchObject(rejected);
        expect(() => store.liveDir(name), name).toThrow(expect.objectContaining(rejected));
      }
      await expect(store.read('Example.test')).rejects.toThrow('use "example.test"');
      await expect(stat(configDir)).rejects.toMatchObject({ code: 'ENOENT' });
    }));

  it('refuses to write a key that does not match the certificate', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      await expect(store.write('example.test', { ...issued[0]!, keyPem: issued[1]!.keyPem })).rejects.toMatchObject({
        code: 'ERR_CERT_FILES_INVALID',
        message: expect.stringContaining('does not match'),
      });
      await expect(
        store.write('example.test', { ...issued[0]!, certPem: issued[0]!.certPem + issued[0]!.chainPem }),
      ).rejects.toMatchObject({ code: 'ERR_CERT_FILES_INVALID' });
      expect(await store.read('example.test')).toBeUndefined();
    }));

  it('gives up on a lineage whose key stays mismatched, naming the files', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      await store.write('example.test', issued[0]!);
      await store.write('example.test', issued[1]!);
      const keyLink = join(dir, 'live', 'example.test', 'privkey.pem');
      await unlink(keyLink);
      await symlink('../../archive/example.test/privkey1.pem', keyLink);
      const started = Date.now();
      await expect(store.read('example.test')).rejects.toMatchObject({
        code: 'ERR_CERT_LINEAGE_INVALID',
        message: expect.stringContaining(`${keyLink} does not match`),
      });
      // It retried for about a second first: certbot may have been halfway through switching the links.
      expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    }));

  it('never returns a mismatched pair while another process keeps rewriting the lineage', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      await store.write('race.example.test', issued[0]!);
      await writeFile(join(dir, 'issued.json'), JSON.stringify(issued));
      const writer = startNode(
        `
        import { existsSync, readFileSync } from 'node:fs';
        import { CertStore } from ${JSON.stringify(distModule('certs/cert-store.js'))};
        const issued = JSON.parse(readFileSync(process.env.ISSUED, 'utf8'));
        const store = new CertStore(process.env.CONFIG_DIR);
        for (let n = 1; !existsSync(process.env.STOP); n++) {
          await store.write('race.example.test', issued[n % issued.length]);
        }`,
        { ISSUED: join(dir, 'issued.json'), CONFIG_DIR: dir, STOP: join(dir, 'stop') },
      );
      const race = await readWhileRewritten(store, 'race.example.test', writer, join(dir, 'stop'), (progress) =>
        progress.reads >= 100 && progress.seen.size === issued.length,
      );
      expect(race.seen.size).toBe(issued.length);
    }));

  it('never returns a mismatched pair while certbot switches the links non-atomically', () =>
    withTempDir(async (dir) => {
      const store = new CertStore(dir);
      for (const files of issued) await store.write('race.example.test', files);
      // What certbot does on each renewal: for each kind, in its order, unlink then symlink. The 1 ms
      // between unlink and symlink (a slow file server) keeps the lineage inconsistent for about a quarter of
      // the time: a reader without retries fails within a few reads, a reader with retries never should.
      const certbot = startNode(
        `
        import { existsSync, symlinkSync, unlinkSync } from 'node:fs';
        const live = process.env.LIVE;
        const pause = new Int32Array(new SharedArrayBuffer(4));
        for (let round = 0; !existsSync(process.env.STOP); round++) {
          const version = (round % ${issued.length}) + 1;
          for (const kind of ['cert', 'privkey', 'chain', 'fullchain']) {
            unlinkSync(live + '/' + kind + '.pem');
            Atomics.wait(pause, 0, 0, 1);
            symlinkSync('../../archive/race.example.test/' + kind + version + '.pem', live + '/' + kind + '.pem');
          }
          Atomics.wait(pause, 0, 0, 10);
        }`,
        { LIVE: store.liveDir('race.example.test'), STOP: join(dir, 'stop') },
      );
      const race = await readWhileRewritten(store, 'race.example.test', certbot, join(dir, 'stop'), (progress) =>
        progress.reads >= 30 && progress.seen.size === issued.length && progress.naiveFailures >= 5,
      );
      // The naive reader's failures show that the race did happen; read() retried through all of them.
      expect(race.naiveFailures).toBeGreaterThanOrEqual(5);
      expect(race.seen.size).toBe(issued.length);
    }));
});

interface RaceProgress {
  reads: number;
  /** Indexes in `issued` of the pairs read. */
  seen: Set<number>;
  /** How often a naive reader (fullchain.pem then privkey.pem, no retry) got a missing file or a mismatch. */
  naiveFailures: number;
}

/**
 * Reads the lineage in a loop, each read checked with expectConsistent, while `child` rewrites it, until
 * `enough` holds or 10 s have passed; then creates `stopFile`, on which the child exits. Rejects if the child
 * fails.
 */
async function readWhileRewritten(
  store: CertStore,
  lineage: string,
  child: ChildProcessWithoutNullStreams,
  stopFile: string,
  enough: (progress: RaceProgress) => boolean,
): Promise<RaceProgress> {
  let exited = false;
  const exit = finished(child).finally(() => (exited = true));
  const live = store.liveDir(lineage);
  const progress: RaceProgress = { reads: 0, seen: new Set(), naiveFailures: 0 };
  const deadline = Date.now() + 10_000;
  try {
    while (!exited && !enough(progress) && Date.now() < deadline) {
      progress.reads++;
      progress.seen.add(expectConsistent(await store.read(lineage)));
      try {
        const cert = new X509Certificate(await readFile(join(live, 'fullchain.pem')));
        if (!cert.checkPrivateKey(createPrivateKey(await readFile(join(live, 'privkey.pem'))))) {
          progress.naiveFailures++;
        }
      } catch {
        progress.naiveFailures++;
      }
    }
  } finally {
    // Also when an expectation failed: the child must be gone before its directory is removed.
    await writeFile(stopFile, '');
    await exit.catch(() => undefined);
  }
  await exit;
  return progress;
}
