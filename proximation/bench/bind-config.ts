/**
 * The BIND 9 set-up the DNS-01 tests and the certificate benchmark share: `named.conf` (listening on
 * 127.0.0.1:`port`, UDP and TCP, `recursion no`, no rndc), a zone whose every name is 127.0.0.1 with
 * `ns1.<zone>` as its only name server, a TSIG key (HMAC-SHA256) that alone may update it, and certbot's
 * dns-rfc2136 credentials file for that key. `writeBindConfig` writes them into `dir` (which becomes
 * named's working directory); start `named -g -c <confPath>` and wait for BIND_RUNNING in its output.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The line `named -g` logs once every zone is loaded and it answers. */
export const BIND_RUNNING = /^\S+ \S+ running$/m;

export interface BindConfig {
  confPath: string;
  keyName: string;
  secret: string;
  credentialsFile: string;
}

export async function writeBindConfig(dir: string, port: number, zone: string): Promise<BindConfig> {
  const keyName = 'proximation-test.';
  const secret = randomBytes(32).toString('base64');
  const confPath = join(dir, 'named.conf');
  await writeFile(
    confPath,
    `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { any; };
};
controls { };
key "${keyName}" { algorithm hmac-sha256; secret "${secret}"; };
zone "${zone}" { type primary; file "${dir}/${zone}.zone"; allow-update { key "${keyName}"; }; };
`,
  );
  await writeFile(
    join(dir, `${zone}.zone`),
    `$TTL 60
@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 60 60 600 60
@ IN NS ns1.${zone}.
@ IN A 127.0.0.1
* IN A 127.0.0.1
ns1 IN A 127.0.0.1
`,
  );
  const credentialsFile = join(dir, 'rfc2136.ini');
  await writeFile(
    credentialsFile,
    `dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = ${port}\ndns_rfc2136_name = ${keyName}\ndns_rfc2136_secret = ${secret}\ndns_rfc2136_algorithm = HMAC-SHA256\n`,
    { mode: 0o600 },
  );
  return { confPath, keyName, secret, credentialsFile };
}
