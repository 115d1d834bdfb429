/**
 * The certificates of the TLS cases (R22), made with the system's `openssl` the first time a case
 * asks, once per run of the suite, in a temporary directory (`comm-conformance-tls-<pid>-*`)
 * removed when the process exits. A process that is killed (a test runner's worker) leaves its
 * directory behind: the next run removes those whose process is gone.
 *
 * - `ca`: a test authority (EC P-256, CA:TRUE), trusted by the cases' clients through `caFile`.
 * - `server`: CN localhost, SAN DNS:localhost and IP:127.0.0.1, signed by `ca`.
 * - `other`: CN other.test, SAN DNS:other.test only, signed by `ca`.
 * - `selfSigned`: CN localhost, SAN localhost and 127.0.0.1, signed by itself: trusted by nobody.
 * - `client`: CN comm-test-client, extendedKeyUsage clientAuth, signed by `ca`.
 *
 * Every certificate is valid from now for two days, X.509 v3, with the extensions rustls (Deno)
 * and BoringSSL (Bun, uWS) insist on as well as OpenSSL (Node, Python).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';

/** A certificate's PEM file and its key's. */
export interface CertificatePair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface Certificates {
  readonly dir: string;
  readonly ca: CertificatePair;
  readonly server: CertificatePair;
  readonly other: CertificatePair;
  readonly selfSigned: CertificatePair;
  readonly client: CertificatePair;
}

const CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[other_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[self_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = ['-days', '2'];

function openssl(dir: string, args: readonly string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    const missing = (error as { code?: string }).code === 'ENOENT';
    throw new Error(
      missing
        ? 'the TLS cases need the system `openssl` to make their certificates, and it is not on PATH'
        : `\`openssl ${args.join(' ')}\` failed: ${stderr || (error as Error).message}`,
    );
  }
}

const PREFIX = 'comm-conformance-tls-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** Removes the directories of earlier runs whose process is gone (killed before its exit handler ran). */
function sweep(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    const pid = Number(match?.[1]);
    if (match && pid !== process.pid && !alive(pid))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** Makes every certificate in a new temporary directory (removed when the process exits). */
export function makeCertificates(): Certificates {
  sweep();
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  try {
    writeFileSync(join(dir, 'openssl.cnf'), CONFIG);
    const pair = (name: string): CertificatePair => ({
      certFile: join(dir, `${name}.pem`),
      keyFile: join(dir, `${name}.key`),
    });
    const ca = pair('ca');
    openssl(dir, [
      'req',
      '-config',
      'openssl.cnf',
      '-x509',
      ...KEY,
      ...DAYS,
      '-subj',
      '/CN=comm test CA',
      '-extensions',
      'ca_ext',
      '-keyout',
      ca.keyFile,
      '-out',
      ca.certFile,
    ]);
    const signed = (name: string, subject: string, extensions: string): CertificatePair => {
      const p = pair(name);
      const csr = join(dir, `${name}.csr`);
      openssl(dir, [
        'req',
        '-config',
        'openssl.cnf',
        '-new',
        ...KEY,
        '-subj',
        subject,
        '-keyout',
        p.keyFile,
        '-out',
        csr,
      ]);
      openssl(dir, [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-set_serial',
        String(Date.now() + Math.floor(Math.random() * 1e6)),
        ...DAYS,
        '-extfile',
        'openssl.cnf',
        '-extensions',
        extensions,
        '-out',
        p.certFile,
      ]);
      return p;
    };
    const server = signed('server', '/CN=localhost', 'server_ext');
    const other = signed('other', '/CN=other.test', 'other_ext');
    const client = signed('client', '/CN=comm-test-client', 'client_ext');
    const selfSigned = pair('self-signed');
    openssl(dir, [
      'req',
      '-config',
      'openssl.cnf',
      '-x509',
      ...KEY,
      ...DAYS,
      '-subj',
      '/CN=localhost',
      '-extensions',
      'self_ext',
      '-keyout',
      selfSigned.keyFile,
      '-out',
      selfSigned.certFile,
    ]);
    return { dir, ca, server, other, selfSigned, client };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

let made: Certificates | null = null;

/** The run's certificates, made on the first call. */
export function certificates(): Certificates {
  made ??= makeCertificates();
  return made;
}

/** Removes the run's certificates now (a test runner's teardown); the next call makes new ones. */
export function removeCertificates(): void {
  if (made) rmSync(made.dir, { recursive: true, force: true });
  made = null;
}
