/**
 * A throw-away certificate authority for TLS tests, made with openssl: a CA, a server
 * certificate for `localhost` and 127.0.0.1 only (connecting by 127.0.0.2 fails the hostname
 * check) in a PKCS#12 keystore for the JVM brokers, and a second, unrelated CA.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** PEM of the CA that signed the server certificate. */
  ca: Buffer;
  /** PEM of another CA that signed nothing here. */
  otherCa: Buffer;
  keystore: string;
  keystorePassword: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'virtfence-pki-'));
  const days = ['-days', '2'];
  for (const name of ['ca', 'other-ca']) {
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.pem`,
        ...days,
        '-subj',
        `/CN=virtfence test ${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
  }
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=localhost',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      ...days,
      '-extfile',
      'server.ext',
    ],
    dir,
  );
  const keystorePassword = 'virtfence-test';
  openssl(
    [
      'pkcs12',
      '-export',
      '-in',
      'server.pem',
      '-inkey',
      'server.key',
      '-certfile',
      'ca.pem',
      '-name',
      'server',
      '-out',
      'server.p12',
      '-passout',
      `pass:${keystorePassword}`,
    ],
    dir,
  );
  return {
    dir,
    ca: readFileSync(join(dir, 'ca.pem')),
    otherCa: readFileSync(join(dir, 'other-ca.pem')),
    keystore: join(dir, 'server.p12'),
    keystorePassword,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
