import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, ListenSpec, TlsServerSpec } from '@comm/core/backend';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  attachSsl,
  backend,
  createSslClientContext,
  createSslServerContext,
  openTcpStream,
  type SocketStream,
  serverTerminate,
  startUpServer,
} from '../src/index.js';

// R22 on node:tls: what this backend does itself, below and through core. The shared suite
// (packages/conformance) checks the contract; these check how node gets there.

let dir = '';
const file = (name: string) => join(dir, name);
let serverSpec: TlsServerSpec;
let caPem = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore', timeout: 10_000 });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed authority: `name`.key and `name`.pem. */
function authority(name: string, subject: string): void {
  openssl(
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    subject,
    '-keyout',
    file(`${name}.key`),
    '-out',
    file(`${name}.pem`),
  );
}

/** A certificate for `keyName`.key that `ca` signed, with the extensions in `ext` if given. */
function signed(keyName: string, subject: string, ca: string, out: string, ext?: string): void {
  openssl('req', ...EC, '-subj', subject, '-keyout', file(`${keyName}.key`), '-out', file(`${keyName}.csr`));
  const extensions = ext === undefined ? [] : ['-extfile', file(ext)];
  const authority = ['-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`), '-CAcreateserial'];
  openssl(
    'x509',
    '-req',
    '-in',
    file(`${keyName}.csr`),
    ...authority,
    '-days',
    '1',
    ...extensions,
    '-out',
    file(out),
  );
}

/** A CA, a server certificate it signed (localhost and 127.0.0.1), a client certificate it signed, and one another CA signed. */
function makeCertificates(): void {
  authority('ca', '/CN=comm test CA');
  authority('other', '/CN=other CA');
  writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  signed('server', '/CN=localhost', 'ca', 'cert.pem', 'server.ext');
  signed('client', '/CN=client', 'ca', 'client.pem');
  // The same key, signed by the other CA.
  const stranger = ['-CA', file('other.pem'), '-CAkey', file('other.key'), '-CAcreateserial'];
  openssl('x509', '-req', '-in', file('client.csr'), ...stranger, '-days', '1', '-out', file('stranger.pem'));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'comm-node-tls-'));
  makeCertificates();
  const context = createSslServerContext({ certFile: file('cert.pem'), keyFile: file('server.key') });
  serverSpec = context.spec;
  caPem = createSslClientContext({ caFile: file('ca.pem') }).spec.ca as string;
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const plainSpec: ListenSpec = {
  host: '127.0.0.1',
  port: 0,
  family: 4,
  ipv6Only: false,
  backlog: 16,
  reusePort: false,
};

async function listen(spec: Partial<ListenSpec> = {}) {
  const listener = await backend.listen({ ...plainSpec, ...spec });
  onTestFinished(() => listener.close());
  return listener;
}

function track<T extends Connection | null>(connection: T): T {
  onTestFinished(() => connection?.destroy());
  return connection;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function readAll(connection: Connection): Promise<string> {
  let text = '';
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read())
    text += decoder.decode(chunk);
  return text;
}

async function readUntil(connection: Connection, end: string): Promise<string> {
  let text = '';
  while (!text.includes(end)) {
    const chunk = await connection.read();
    if (chunk === null) break;
    text += decoder.decode(chunk);
  }
  return text;
}

/** Runs Python with a timeout; its process is killed when the test ends. */
function python(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('python3', ['-c', script, ...args], { timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
  });
}

/**
 * Python's ssl client: trusts the test CA, verifies localhost, says hello, then reads to the end
 * with ragged EOFs reported (SSLEOFError unless the server sent close_notify before its FIN).
 */
const PYTHON_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
raw = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
s = ctx.wrap_socket(raw, server_hostname='localhost', suppress_ragged_eofs=False)
print(s.getsockname()[1], s.version(), flush=True)
s.sendall(b'hello\\n')
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode().strip(), 'then close_notify', flush=True)
s.close()
`;

describe('node backend: TLS (R22)', () => {
  it('a TLS listener talks to Python, whose ssl module sees close_notify before the FIN', async () => {
    const listener = await listen({ tls: serverSpec });
    const client = python(PYTHON_CLIENT, [file('ca.pem'), String(listener.local.port)]);
    const server = track(await listener.accept());
    if (!server?.handshake) throw new Error('a TLS connection has handshake()');
    expect(server.tls).toBeNull();
    await server.handshake();
    expect(server.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    // The addresses are the TCP socket's.
    expect(server.local).toEqual({ address: '127.0.0.1', port: listener.local.port, family: 4 });
    expect(server.remote.address).toBe('127.0.0.1');
    expect(await readUntil(server, '\n')).toBe('hello\n');
    await server.write(encoder.encode('HELLO'));
    await server.end();
    const { code, stdout, stderr } = await client;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const [first, second] = stdout.split('\n');
    expect(first).toBe(`${server.remote.port} TLSv1.3`);
    expect(second).toBe('HELLO then close_notify');
  });

  it('connects with TLS: the name verified, half-close both ways, and every TLS write paced', async () => {
    const listener = await listen({ tls: serverSpec });
    const client = track(
      await backend.connect({
        host: '127.0.0.1',
        port: listener.local.port,
        family: 4,
        tls: { ca: caPem, verify: true, servername: 'localhost' },
      }),
    );
    const server = track(await listener.accept());
    if (!server) throw new Error('no connection');
    await Promise.all([client.handshake?.(), server.handshake?.()]);
    expect(client.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(server.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(client.local).toEqual(server.remote);
    expect(client.remote).toEqual(server.local);
    // Node finishes TLS writes on a later turn: a promise, which resolves.
    const pending = client.write(encoder.encode('ping'));
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    await client.end();
    expect(await readAll(server)).toBe('ping');
    // The server may still answer after the client's close_notify and FIN.
    await server.writeText?.('pong');
    await server.end();
    expect(await readAll(client)).toBe('pong');
  });

  it('a client connecting to an IP literal verifies it against the IP names, and sends no SNI', async () => {
    const listener = await listen({ tls: serverSpec });
    const client = track(
      await backend.connect({
        host: '127.0.0.1',
        port: listener.local.port,
        family: 4,
        tls: { ca: caPem, verify: true },
      }),
    );
    const server = track(await listener.accept());
    await Promise.all([client.handshake?.(), server?.handshake?.()]);
    expect(client.tls).toEqual({ servername: null, protocol: 'TLSv1.3' });
    expect(server?.tls).toEqual({ servername: null, protocol: 'TLSv1.3' });
  });

  it('handshake() rejects with node:tls codes: untrusted, wrong name, and the listener goes on', async () => {
    const listener = await listen({ tls: serverSpec });
    const port = listener.local.port;
    const attempt = async (tls: { ca?: string; verify: boolean; servername?: string }) => {
      const client = track(await backend.connect({ host: '127.0.0.1', port, family: 4, tls }));
      const server = track(await listener.accept());
      void server?.handshake?.().catch(() => {});
      try {
        await client.handshake?.();
        return client.tls;
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    expect(await attempt({ verify: true, servername: 'localhost' })).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(await attempt({ ca: caPem, verify: true, servername: 'example.com' })).toBe(
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
    // verify false: neither the chain nor the name.
    expect(await attempt({ verify: false, servername: 'example.com' })).toEqual({
      servername: 'example.com',
      protocol: 'TLSv1.3',
    });
    expect(await attempt({ ca: caPem, verify: true, servername: 'localhost' })).toEqual({
      servername: 'localhost',
      protocol: 'TLSv1.3',
    });
  });

  it('with requestCert, only a client certificate the CA signed is accepted (not just any certificate)', async () => {
    const context = createSslServerContext({
      certFile: file('cert.pem'),
      keyFile: file('server.key'),
      caFile: file('ca.pem'),
      requestCert: true,
    });
    const listener = await listen({ tls: context.spec });
    const key = readFileSync(file('client.key'), 'utf8');
    const serverSide = async (cert: string | undefined) => {
      const client = track(
        await backend.connect({
          host: '127.0.0.1',
          port: listener.local.port,
          family: 4,
          tls: { ca: caPem, verify: true, servername: 'localhost', ...(cert ? { cert, key } : {}) },
        }),
      );
      void client.handshake?.().catch(() => {});
      const server = track(await listener.accept());
      try {
        await server?.handshake?.();
        return 'accepted';
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    expect(await serverSide(undefined)).toBe('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
    expect(await serverSide(readFileSync(file('stranger.pem'), 'utf8'))).toBe(
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
    expect(await serverSide(readFileSync(file('client.pem'), 'utf8'))).toBe('accepted');
  });

  it('a TLS write waits while the peer reads nothing (R16a over TLS)', async () => {
    const listener = await listen({ tls: serverSpec });
    const client = track(
      await backend.connect({
        host: '127.0.0.1',
        port: listener.local.port,
        family: 4,
        tls: { ca: caPem, verify: true, servername: 'localhost' },
      }),
    );
    const server = track(await listener.accept());
    if (!server) throw new Error('no connection');
    await Promise.all([client.handshake?.(), server.handshake?.()]);
    const chunk = new Uint8Array(64 * 1024);
    let handed = 0;
    for (;;) {
      const pending = server.write(chunk);
      const settled = await Promise.race([
        pending?.then(() => true),
        new Promise((resolve) => setTimeout(resolve, 300, false)),
      ]);
      if (!settled) break;
      handed += chunk.length;
      if (handed > 64 * 1024 * 1024) throw new Error('64 MiB went out to a peer that reads nothing');
    }
    // Kernel buffers both ways and the client's read-ahead, no more.
    expect(handed).toBeLessThan(16 * 1024 * 1024);
    // Reading resumes the writer.
    let received = 0;
    while (received < handed) received += (await client.read())?.length ?? Number.NaN;
    expect(received).toBeGreaterThanOrEqual(handed);
  });

  it('a plain listener and client are untouched: no handshake, no tls, writes taken at once, node:tls not loaded', async () => {
    const script = `
      const { backend } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const spec = { host: '127.0.0.1', port: 0, family: 4, ipv6Only: false, backlog: 5, reusePort: false };
      const listener = await backend.listen(spec);
      const client = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
      const server = await listener.accept();
      const written = client.write(new Uint8Array([1, 2, 3]));
      const chunk = await server.read();
      const loaded = process.moduleLoadList.filter((m) => /tls/.test(m));
      console.log(JSON.stringify({
        handshake: typeof server.handshake, tls: server.tls, clientTls: client.tls,
        written: written === undefined, read: chunk.length, loaded,
      }));
      client.destroy(); server.destroy(); await listener.close();
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(JSON.parse(out)).toEqual({ handshake: 'undefined', written: true, read: 3, loaded: [] });
  });
});

describe('node backend: TLS through core', () => {
  it('a client that never says hello does not hold up the next, and is closed after handshakeTimeout', async () => {
    const sslCtx = createSslServerContext({
      certFile: file('cert.pem'),
      keyFile: file('server.key'),
      handshakeTimeout: 0.5,
    });
    const [server, condition] = (await startUpServer({
      address: '127.0.0.1',
      service: 0,
      wait: true,
      announce: false,
      sslCtx,
      createStream: true,
      function: async (stream: SocketStream) => {
        const line = await stream.readLine();
        await stream.writeLine(String(line).toUpperCase());
        await stream.close();
      },
    })) as [ReturnType<typeof startUpServer> & { socket: { local: { port: number } } }, Error | null];
    expect(condition).toBeNull();
    onTestFinished(() => {
      serverTerminate(server as never);
    });
    const port = server.socket.local.port;
    const silent = net.connect({ host: '127.0.0.1', port });
    onTestFinished(() => {
      silent.destroy();
    });
    const silentClosed = new Promise<number>((resolve) => {
      silent.on('error', () => {});
      silent.on('close', () => resolve(Date.now()));
    });
    await new Promise((resolve) => silent.once('connect', resolve));
    const opened = Date.now();
    // One that speaks something else: its handshake fails, and that is all.
    const garbage = net.connect({ host: '127.0.0.1', port });
    garbage.on('error', () => {});
    garbage.end('GET / HTTP/1.0\r\n\r\n');
    onTestFinished(() => {
      garbage.destroy();
    });
    const sslClient = createSslClientContext({ caFile: file('ca.pem') });
    for (const word of ['first', 'second']) {
      const started = Date.now();
      const stream = await openTcpStream('127.0.0.1', port, {
        sslCtx: sslClient,
        tlsextHostName: 'localhost',
        errorp: true,
      });
      if (!stream) throw new Error('no stream');
      expect(stream.socket.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
      await stream.writeLine(word);
      stream.forceOutput();
      expect(await stream.readLine()).toBe(word.toUpperCase());
      expect(await stream.readLine()).toBeNull();
      await stream.close();
      expect(Date.now() - started).toBeLessThan(400);
    }
    const closedAfter = (await silentClosed) - opened;
    expect(closedAfter).toBeGreaterThanOrEqual(400);
    expect(closedAfter).toBeLessThan(2000);
  });

  it('STARTTLS both ways between two node connections (attachSsl), then talk over TLS', async () => {
    const serverCtx = createSslServerContext({ certFile: file('cert.pem'), keyFile: file('server.key') });
    const seen: unknown[] = [];
    const [server] = (await startUpServer({
      address: '127.0.0.1',
      service: 0,
      wait: true,
      announce: false,
      createStream: true,
      function: async (stream: SocketStream) => {
        try {
          seen.push(await stream.readLine());
          await stream.writeLine('220 go ahead');
          // Sent in the clear before TLS starts (attachSsl does not flush what is buffered).
          await stream.finishOutput();
          await attachSsl(stream, { sslCtx: serverCtx });
          seen.push(stream.socket.tls);
          const line = await stream.readLine();
          await stream.writeLine(`secure ${line}`);
          await stream.close();
        } catch (error) {
          seen.push(error);
          await stream.close({ abort: true });
        }
      },
    })) as [{ socket: { local: { port: number } } }, Error | null];
    onTestFinished(() => {
      serverTerminate(server as never);
    });
    const stream = await openTcpStream('127.0.0.1', server.socket.local.port, { errorp: true });
    if (!stream) throw new Error('no stream');
    onTestFinished(() => stream.close({ abort: true }));
    const plainAddress = [stream.socket.local, stream.socket.remote];
    await stream.writeLine('STARTTLS');
    stream.forceOutput();
    expect(await stream.readLine()).toBe('220 go ahead');
    await attachSsl(stream, {
      sslCtx: createSslClientContext({ caFile: file('ca.pem') }),
      tlsextHostName: 'localhost',
    });
    expect(stream.socket.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect([stream.socket.local, stream.socket.remote]).toEqual(plainAddress);
    await stream.writeLine('hello');
    stream.forceOutput();
    expect(await stream.readLine()).toBe('secure hello');
    expect(await stream.readLine()).toBeNull();
    expect(seen).toEqual(['STARTTLS', { servername: 'localhost', protocol: 'TLSv1.3' }]);
  });

  it('STARTTLS on the seam: the plain connection stops reading; bytes that came before TLS fail it', async () => {
    const listener = await listen();
    const client = track(await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 }));
    const server = track(await listener.accept());
    if (!server?.startTls || !client.startTls) throw new Error('node connections can start TLS');
    await client.write(encoder.encode('A'));
    expect(decoder.decode((await server.read()) ?? undefined)).toBe('A');
    // The client sends before the server starts TLS: those bytes are read ahead, and never taken as TLS.
    await client.write(encoder.encode('early'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const secure = track(server.startTls({ side: 'server', spec: serverSpec }));
    await expect(secure.handshake?.()).rejects.toMatchObject({ code: 'EPROTO' });
    expect(await server.read()).toBeNull();
    // A TLS connection does not start TLS again.
    expect(() => secure.startTls?.({ side: 'server', spec: serverSpec })).toThrow(
      expect.objectContaining({ code: 'EISCONN' }),
    );

    // In step, on a fresh pair: both sides upgrade, and the plain connections read nothing more.
    const client2 = track(await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 }));
    const server2 = track(await listener.accept());
    if (!server2?.startTls || !client2.startTls) throw new Error('node connections can start TLS');
    const secureServer = track(server2.startTls({ side: 'server', spec: serverSpec }));
    const secureClient = track(
      client2.startTls({ side: 'client', spec: { ca: caPem, verify: true, servername: 'localhost' } }),
    );
    await Promise.all([secureServer.handshake?.(), secureClient.handshake?.()]);
    expect(await server2.read()).toBeNull();
    expect(await client2.read()).toBeNull();
    expect(secureServer.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(secureServer.remote).toEqual(server2.remote);
    await secureClient.write(encoder.encode('over tls'));
    await secureClient.end();
    expect(await readAll(secureServer)).toBe('over tls');
    await secureServer.end();
    expect(await readAll(secureClient)).toBe('');
  });
});
