/**
 * The tools of the R22 cases, checked against Node's own `node:tls`: the certificates verify (or
 * not) as the cases expect, and the Python peer tells a close_notify from a bare FIN.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { certificates, removeCertificates } from '../src/cases/certificates.js';
import { fixturePath } from '../src/suite.js';

afterAll(() => removeCertificates());

function verify(cert: string): boolean {
  try {
    execFileSync('openssl', ['verify', '-CAfile', certificates().ca.certFile, cert], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** A node:tls server with `pair` that writes `text` to each client, then ends with `end()` or `destroy()`. */
async function server(pair: { certFile: string; keyFile: string }, text: string, close: 'end' | 'destroy') {
  const srv = tls.createServer(
    { cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile) },
    (socket) => {
      socket.on('error', () => {});
      // Not in this callback: Node 20 sends no close_notify for an end() within 'secureConnection'.
      setTimeout(() => {
        socket.write(text);
        if (close === 'end') socket.end();
        else setTimeout(() => socket.destroy(), 50);
      }, 10);
    },
  );
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return (srv.address() as AddressInfo).port;
}

/** Runs the Python peer to its end and parses its RESULT line. */
function peer(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [fixturePath('tls-peer.py'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.on('error', reject);
    child.on('exit', () => {
      const match = /^RESULT (.*)$/m.exec(out);
      if (match) resolve(JSON.parse(match[1] as string) as Record<string, unknown>);
      else reject(new Error(`no RESULT: ${err}`));
    });
  });
}

describe('certificates', () => {
  it('are signed by the test CA, except the self-signed one', () => {
    const c = certificates();
    expect(verify(c.server.certFile)).toBe(true);
    expect(verify(c.other.certFile)).toBe(true);
    expect(verify(c.client.certFile)).toBe(true);
    expect(verify(c.selfSigned.certFile)).toBe(false);
  });

  it('name localhost and 127.0.0.1, or other.test only', () => {
    const text = (file: string) =>
      execFileSync('openssl', ['x509', '-in', file, '-noout', '-ext', 'subjectAltName']).toString();
    expect(text(certificates().server.certFile)).toMatch(/DNS:localhost, IP Address:127\.0\.0\.1/);
    expect(text(certificates().other.certFile)).toMatch(/DNS:other\.test/);
    expect(text(certificates().other.certFile)).not.toMatch(/localhost|127\.0\.0\.1/);
  });
});

describe('the Python peer', () => {
  const ca = () => certificates().ca.certFile;

  it('reads to a close_notify as a clean end', async () => {
    const port = await server(certificates().server, 'one\ntwo\n', 'end');
    const answer = await peer(['talk', '--port', String(port), '--ca', ca(), '--servername', 'localhost']);
    expect(answer).toMatchObject({ received: 'one\ntwo\n', eof: 'clean' });
    expect(answer.version).toMatch(/^TLSv1\.[23]$/);
  });

  it('tells a bare FIN (no close_notify) from a clean end', async () => {
    const port = await server(certificates().server, 'one\n', 'destroy');
    const answer = await peer(['talk', '--port', String(port), '--ca', ca(), '--servername', 'localhost']);
    expect(answer.received).toBe('one\n');
    expect(answer.eof).toMatch(/SSLEOFError/);
  });

  it('refuses a certificate for another name', async () => {
    const port = await server(certificates().other, 'one\n', 'end');
    await expect(
      peer(['talk', '--port', String(port), '--ca', ca(), '--servername', 'localhost']),
    ).rejects.toThrow(/CERTIFICATE_VERIFY_FAILED|certificate verify failed/);
  });
});
