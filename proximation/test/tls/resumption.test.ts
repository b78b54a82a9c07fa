import path from 'node:path';
import type tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { LocalCa } from '../../src/certs/local-ca.js';
import { rotateTicketKeys } from '../../src/tls/ticket-keys.js';
import { SniContexts } from '../../src/tls/sni.js';
import { managed, table, tempDir } from '../support/fixtures.js';
import { waitUntil } from '../support/process.js';
import { handshake, newSession, startListener } from './helpers.js';

const resources = managed();
const NAMES = ['a.test', 'b.test'];
const VERSIONS: tls.SecureVersion[] = ['TLSv1.2', 'TLSv1.3'];

/** For each version and name: the options of a client pinned to them. */
const clients = (ca: string) => VERSIONS.flatMap((version) => NAMES.map((servername) => ({ servername, ca, minVersion: version, maxVersion: version })));

/** What a failed expectation should show: which name and version, and whether the session was resumed. */
const outcome = (client: tls.ConnectionOptions, reused: boolean) => ({ name: client.servername, version: client.maxVersion, reused });

describe('TLS session resumption', () => {
  it('resumes TLS 1.2 and TLS 1.3 sessions for every SNI name of a running proxy', async () => {
    const upstream = await resources.upstream((_req, res) => res.end('ok'));
    const p = await resources.proxy(table(NAMES.map((host, i) => ({ name: `site${i}`, hosts: [host], upstreams: [upstream.origin] }))));
    for (const client of clients(p.ca)) {
      const first = await newSession(p.server.https.port, client);
      expect(first).toMatchObject({ protocol: client.maxVersion, reused: false });
      const second = await handshake(p.server.https.port, { ...client, session: first.session });
      expect(outcome(client, second.reused)).toEqual(outcome(client, true));
    }
  });

  it('stops resuming sessions issued before a ticket key rotation, for every name, and resumes new ones', async () => {
    const dir = await tempDir();
    resources.defer(() => dir.close());
    const ca = await LocalCa.open(path.join(dir.path, 'ca'));
    const sni = new SniContexts(async () => undefined);
    for (const name of NAMES) {
      const files = await ca.issue([name]);
      sni.set(name, { fullchainPem: files.certPem + files.chainPem, keyPem: files.keyPem });
    }
    const { listener, port } = await startListener(sni.SNICallback, resources.defer);
    const stop = rotateTicketKeys(listener.server, 200);
    resources.defer(async () => stop());

    const before = [];
    for (const client of clients(ca.rootPem)) before.push({ client, session: (await newSession(port, client)).session });
    // Every session above was issued under this key set or an earlier one; wait until it is replaced.
    const keys = listener.server.getTicketKeys();
    await waitUntil(() => !listener.server.getTicketKeys().equals(keys), 'a ticket key rotation', 5000);
    stop();

    for (const { client, session } of before) {
      expect(outcome(client, (await handshake(port, { ...client, session })).reused)).toEqual(outcome(client, false));
      const fresh = await newSession(port, client);
      expect(outcome(client, (await handshake(port, { ...client, session: fresh.session })).reused)).toEqual(outcome(client, true));
    }
  });
});
