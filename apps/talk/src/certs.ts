import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private certificate authority and a certificate it signed for localhost, in a temp dir. */
export interface Certificates {
  readonly dir: string;
  /** The authority's certificate (PEM): what a client trusts with `--ca`. */
  readonly ca: string;
  /** The server's certificate (PEM), for localhost, 127.0.0.1 and ::1. */
  readonly cert: string;
  /** The server's private key (PEM, unencrypted). */
  readonly key: string;
  /** Removes the dir and everything in it. */
  remove(): void;
}

/**
 * Makes a CA and a localhost certificate signed by it with the system's `openssl` (EC P-256,
 * valid for a day), in a new temp dir whose name starts with `prefix`. Throws, naming the command,
 * when `openssl` is missing or fails; the dir is removed then.
 */
export function makeCertificates(prefix = 'comm-talk-tls-'): Certificates {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      const { code, stderr } = error as { code?: string; stderr?: Buffer };
      throw new Error(
        code === 'ENOENT'
          ? 'openssl is not installed: run `node scripts/setup.mjs` (as root on Debian it installs it), or install the openssl package'
          : `openssl ${args[0]} failed: ${String(stderr ?? '').trim() || (error as Error).message}`,
      );
    }
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    openssl(
      'req',
      '-x509',
      ...ec,
      '-days',
      '1',
      '-subj',
      '/CN=comm talk test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      at('ca-key.pem'),
      '-out',
      at('ca.pem'),
    );
    openssl('req', ...ec, '-subj', '/CN=localhost', '-keyout', at('key.pem'), '-out', at('cert.csr'));
    writeFileSync(
      at('cert.ext'),
      [
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      at('cert.csr'),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      at('cert.ext'),
      '-out',
      at('cert.pem'),
    );
  } catch (error) {
    remove();
    throw error;
  }
  return { dir, ca: at('ca.pem'), cert: at('cert.pem'), key: at('key.pem'), remove };
}
