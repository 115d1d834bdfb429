import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  bindUws,
  type Connection,
  conformanceTransport,
  createSslClientContext,
  createSslServerContext,
  getSocketAddress,
  getSocketPeerAddress,
  type Listener,
  type ListenSpec,
  loadUws,
  protocol,
  type ServerProcess,
  type SocketStream,
  type TlsServerSpec,
} from '../src/internals.js';
import { expectWritesBoundedByStoppedReader } from './bounded.js';

const MiB = 1024 * 1024;
const uws = loadUws();
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Certificates made for this file with the system's openssl, in a directory removed after it. */
let dir = '';
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'comm-uws-tls-'));
  // An authority, a server certificate it signed (localhost, 127.0.0.1), and a self-signed stranger.
  openssl(
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    '/CN=comm test CA',
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
  );
  openssl('req', ...EC, '-subj', '/CN=localhost', '-keyout', 'key.pem', '-out', 'server.csr');
  writeFileSync(file('san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca-key.pem',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.cnf',
    '-out',
    'cert.pem',
  );
  openssl(
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    'self-key.pem',
    '-out',
    'self.pem',
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const serverContext = (options: Partial<Parameters<typeof createSslServerContext>[0]> = {}) =>
  createSslServerContext({ certFile: file('cert.pem'), keyFile: file('key.pem'), ...options });
const trusting = () => createSslClientContext({ caFile: file('ca.pem') });

/** A TLS server on loopback whose `function` is `serve`; terminated after the test. */
async function tlsServer(
  serve: (stream: SocketStream) => unknown,
  options: {
    api?: ReturnType<typeof bindUws>;
    address?: string;
    sslCtx?: ReturnType<typeof serverContext>;
  } = {},
) {
  const api = options.api ?? bindUws({ uws });
  const [server, condition] = await api.startUpServer({
    service: 0,
    address: options.address ?? '127.0.0.1',
    createStream: true,
    wait: true,
    sslCtx: options.sslCtx ?? serverContext(),
    function: serve,
  });
  if (!server) throw condition;
  cleanups.push(() => api.serverTerminate(server as ServerProcess));
  return { api, server, port: server.socket?.local.port as number };
}

/** A stream's socket handle, with the TLS info the handle gives. */
const handle = (stream: SocketStream) =>
  stream.socket as unknown as { tls: { servername: string | null; protocol: string | null } | null };

/** Serves one line: the server's view of the connection, as JSON. */
function describeConnection(stream: SocketStream) {
  void (async () => {
    await stream.readLine();
    const [, peerPort] = getSocketPeerAddress(stream.socket as never);
    const [, localPort] = getSocketAddress(stream.socket as never);
    await stream.writeLine(JSON.stringify({ tls: handle(stream).tls, peerPort, localPort }));
    await stream.close();
  })().catch(() => stream.close({ abort: true }));
}

describe('TLS listener (SSLApp) and wss client', () => {
  it('talk through the contract; the server knows the SNI name, the client the protocol; addresses are right', async () => {
    const { api, port } = await tlsServer(describeConnection);
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    expect(handle(stream).tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    await stream.writeLine('who am I?');
    await stream.finishOutput();
    const seen = JSON.parse((await stream.readLine()) as string);
    expect(seen.tls).toEqual({ servername: 'localhost', protocol: null });
    // /proc/net/tcp gives the peer's port over TLS as over plain TCP: the same socket.
    if (process.platform === 'linux') expect(seen.peerPort).toBe(getSocketAddress(stream.socket as never)[1]);
    expect(seen.localPort).toBe(port);
  });

  it('a client that sends no SNI name (an address, verified against the IP name) gives servername null', async () => {
    const { api, port } = await tlsServer(describeConnection);
    const stream = await api.openTcpStream('127.0.0.1', port, { sslCtx: trusting(), errorp: true });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    await stream.writeLine('?');
    await stream.finishOutput();
    expect(JSON.parse((await stream.readLine()) as string).tls).toEqual({ servername: null, protocol: null });
  });

  it('with serverNames: 0 the listener learns no names', async () => {
    const api = bindUws({ uws, serverNames: 0 });
    const { port } = await tlsServer(describeConnection, { api });
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    await stream.writeLine('?');
    await stream.finishOutput();
    expect(JSON.parse((await stream.readLine()) as string).tls.servername).toBeNull();
  });

  it('verification failures reject with the runtime code; the listener goes on serving', async () => {
    const { api, port } = await tlsServer(describeConnection);
    const open = (options: object) => api.openTcpStream('127.0.0.1', port, { errorp: true, ...options });
    // Node's roots do not know the test authority.
    await expect(
      open({ sslCtx: createSslClientContext(), tlsextHostName: 'localhost' }),
    ).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', tls: true });
    // The certificate does not name other.example.
    await expect(open({ sslCtx: trusting(), tlsextHostName: 'other.example' })).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      tls: true,
    });
    // errorp false: null.
    expect(await api.openTcpStream('127.0.0.1', port, { sslCtx: createSslClientContext() })).toBeNull();
    // Verification off: served.
    const stream = await open({
      sslCtx: createSslClientContext({ verify: false }),
      tlsextHostName: 'other.example',
    });
    cleanups.push(() => stream?.close({ abort: true }));
    await stream?.writeLine('?');
    await stream?.finishOutput();
    expect(JSON.parse((await stream?.readLine()) as string).tls.servername).toBeNull();
  });

  it('a self-signed server certificate is refused by a client that trusts the authority', async () => {
    const { api, port } = await tlsServer(describeConnection, {
      sslCtx: serverContext({ certFile: file('self.pem'), keyFile: file('self-key.pem') }),
    });
    await expect(
      api.openTcpStream('127.0.0.1', port, { sslCtx: trusting(), tlsextHostName: 'localhost', errorp: true }),
    ).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', tls: true });
  });

  it('silent clients and a failed handshake hold up nobody: the next client is served at once', async () => {
    const { api, port } = await tlsServer(describeConnection);
    const silent: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      silent.push(socket);
      cleanups.push(() => socket.destroy());
    }
    // Not TLS at all: uWS ends that connection only.
    const garbage = net.connect(port, '127.0.0.1', () => garbage.write('GET / HTTP/1.1\r\n\r\n'));
    const garbageClosed = new Promise<void>((resolve) => garbage.on('close', () => resolve()));
    garbage.on('error', () => {});
    await garbageClosed;
    const started = Date.now();
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    cleanups.push(() => stream?.close({ abort: true }));
    await stream?.writeLine('?');
    await stream?.finishOutput();
    expect(JSON.parse((await stream?.readLine()) as string).tls.servername).toBe('localhost');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(silent.every((s) => !s.destroyed)).toBe(true);
  });

  it('uWS closes a silent client by itself after its HTTP timeout (8-12 s), whatever handshakeTimeout says', async () => {
    const { port } = await tlsServer(describeConnection, { sslCtx: serverContext({ handshakeTimeout: 1 }) });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    cleanups.push(() => socket.destroy());
    const started = Date.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const seconds = (Date.now() - started) / 1000;
    expect(seconds).toBeGreaterThan(6);
    expect(seconds).toBeLessThan(13);
  }, 20_000);

  it('an echo server (a write for every read) over TLS: 4 MiB come back whole', async () => {
    // uSockets loses undecrypted input when a TLS socket is written to while it delivers a read:
    // the backend hands events on after uWS's callback returns, so this echo does not break the stream.
    const { api, port } = await tlsServer(async (stream) => {
      for (let chunk = await stream.readAvailable(); chunk !== null; chunk = await stream.readAvailable()) {
        await stream.writeSequence(chunk);
        await stream.finishOutput();
      }
      await stream.close();
    });
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    const payload = randomBytes(4 * MiB);
    expect(sha256(await exchange(stream, payload))).toBe(sha256(payload));
  }, 30_000);

  it('a silent server: the client gives up after handshakeTimeout (ETIMEDOUT, a TLS condition)', async () => {
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const socket of held) socket.destroy();
      return new Promise((resolve) => silent.close(resolve));
    });
    const { port } = silent.address() as net.AddressInfo;
    const api = bindUws({ uws });
    const started = Date.now();
    await expect(
      api.openTcpStream('127.0.0.1', port, { sslCtx: trusting(), handshakeTimeout: 0.5, errorp: true }),
    ).rejects.toMatchObject({ code: 'ETIMEDOUT', tls: true });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('closing a stream sends close_notify before the TCP connection ends (openssl s_client)', async () => {
    const { port } = await tlsServer(async (stream) => {
      await stream.writeLine('bye');
      await stream.close();
    });
    // A WebSocket upgrade by hand, then whatever comes: -msg prints each TLS record's type.
    const client = spawn(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-servername',
        'localhost',
        '-CAfile',
        file('ca.pem'),
        '-quiet',
        '-msg',
        '-ign_eof',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    cleanups.push(() => client.kill());
    let output = '';
    client.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
    client.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
    client.stdin.write(
      'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const exited = new Promise<void>((resolve) => client.on('exit', () => resolve()));
    const deadline = Date.now() + 8000;
    while (!/<<< TLS 1\.3, Alert \[length 0002\], warning close_notify/.test(output) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(output).toContain('101 Switching Protocols');
    expect(output).toContain('bye');
    expect(output).toMatch(/<<< TLS 1\.3, Alert \[length 0002\], warning close_notify/);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
  }, 15_000);

  it('10 MiB through one TLS connection, both directions at once, arrives byte-exact', {
    timeout: 60_000,
  }, async () => {
    const size = 10 * MiB;
    const fromClient = randomBytes(size);
    const fromServer = randomBytes(size);
    let serverGot: Promise<Buffer> | null = null;
    const { api, port } = await tlsServer((stream) => {
      serverGot = exchange(stream, fromServer);
    });
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    const clientGot = await exchange(stream, fromClient);
    const got = await (serverGot as unknown as Promise<Buffer>);
    expect(sha256(clientGot)).toBe(sha256(fromServer));
    expect(sha256(got)).toBe(sha256(fromClient));
  });

  it('serves on 0.0.0.0 with the right addresses (the kernel table, the same port)', async () => {
    const { api, port } = await tlsServer(describeConnection, { address: '0.0.0.0' });
    const stream = await api.openTcpStream('127.0.0.1', port, {
      sslCtx: trusting(),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    await stream.writeLine('?');
    await stream.finishOutput();
    const seen = JSON.parse((await stream.readLine()) as string);
    expect(seen.localPort).toBe(port);
    if (process.platform === 'linux') expect(seen.peerPort).toBe(getSocketAddress(stream.socket as never)[1]);
  });
});

describe('the seam over TLS', () => {
  const spec = (tls: Partial<TlsServerSpec> = {}): ListenSpec => ({
    host: '127.0.0.1',
    port: 0,
    family: 4,
    ipv6Only: false,
    backlog: null,
    reusePort: false,
    tls: {
      cert: readFileSync(file('cert.pem'), 'utf8'),
      key: readFileSync(file('key.pem'), 'utf8'),
      requestCert: false,
      files: { cert: file('cert.pem'), key: file('key.pem') },
      ...tls,
    },
  });
  const backend = () => bindUws({ uws }).backend;
  async function listen(overrides: Partial<TlsServerSpec> = {}): Promise<Listener> {
    const listener = await backend().listen(spec(overrides));
    cleanups.push(() => listener.close());
    return listener;
  }

  it('requestCert is refused with ENOTSUP: uWS cannot refuse a client that sends no certificate', async () => {
    await expect(
      backend().listen(spec({ requestCert: true, ca: readFileSync(file('ca.pem'), 'utf8') })),
    ).rejects.toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/1058/) });
    const api = bindUws({ uws });
    const [server, condition] = await api.startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      sslCtx: serverContext({ caFile: file('ca.pem'), requestCert: true }),
      function: () => {},
    });
    expect(server).toBeNull();
    expect(condition).toMatchObject({ code: 'ENOTSUP' });
  });

  it('a key that does not fit the certificate fails listen with OpenSSL’s reason', async () => {
    await expect(listen({ key: readFileSync(file('self-key.pem'), 'utf8') })).rejects.toMatchObject({
      code: expect.stringMatching(/^ERR_OSSL/),
    });
  });

  it('startTls throws ENOTSUP on both sides, naming the upstream issue', async () => {
    const listener = await listen();
    const client = await bindUws({ uws }).backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      tls: { ca: readFileSync(file('ca.pem'), 'utf8'), verify: true, servername: 'localhost' },
    });
    cleanups.push(() => client.destroy());
    await client.handshake?.();
    const server = (await listener.accept()) as Connection;
    cleanups.push(() => server.destroy());
    expect(server.handshake).toBeUndefined();
    expect(server.tls).toEqual({ servername: 'localhost', protocol: null });
    expect(() => server.startTls?.({ side: 'server', spec: spec().tls as TlsServerSpec })).toThrow(
      expect.objectContaining({ code: 'ENOTSUP', message: expect.stringMatching(/uSockets\/issues\/143/) }),
    );
    expect(() => client.startTls?.({ side: 'client', spec: { verify: true } })).toThrow(
      expect.objectContaining({ code: 'ENOTSUP' }),
    );
  });

  it('connect resolves once TCP is connected; handshake() rejects with the TLS error', async () => {
    const listener = await listen();
    const client = await bindUws({ uws }).backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      tls: { verify: true, servername: 'localhost' },
    });
    cleanups.push(() => client.destroy());
    expect(client.tls).toBeNull();
    await expect(client.handshake?.()).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    // A refused connection rejects connect itself.
    listener.close();
    await expect(
      bindUws({ uws }).backend.connect({
        host: '127.0.0.1',
        port: listener.local.port,
        family: 4,
        tls: { verify: true },
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('a write to a TLS client that reads nothing waits: what uWS holds stays bounded', async () => {
    const listener = await listen();
    const client = await conformanceTransport(listener.local.port, '127.0.0.1', {
      tls: { ca: readFileSync(file('ca.pem'), 'utf8'), servername: 'localhost' },
    });
    cleanups.push(() => client.destroy());
    expect(client.tls?.protocol).toBe('TLSv1.3');
    client.pause();
    const server = (await listener.accept()) as Connection;
    await expectWritesBoundedByStoppedReader(server, client);
  });

  it('a TLS client keeps at most 256 KiB beyond the acknowledgements (TLS_WINDOW), below comm-stream’s 1 MiB', async () => {
    const listener = await listen();
    const client = await bindUws({ uws }).backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      tls: { ca: readFileSync(file('ca.pem'), 'utf8'), verify: true, servername: 'localhost' },
    });
    cleanups.push(() => client.destroy());
    await client.handshake?.();
    const server = (await listener.accept()) as Connection;
    cleanups.push(() => server.destroy());
    let written = 0;
    const writing = (async () => {
      const chunk = new Uint8Array(64 * 1024);
      for (let i = 0; i < 16; i++) {
        await client.write(chunk);
        written += chunk.length;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(written).toBe(protocol.TLS_WINDOW);
    let read = 0;
    while (read < 16 * 64 * 1024) read += ((await server.read()) as Uint8Array).length;
    await writing;
    expect(written).toBe(MiB);
  });

  it('the conformance transport over TLS rejects an untrusted server with the TLS code', async () => {
    const listener = await listen();
    await expect(
      conformanceTransport(listener.local.port, '127.0.0.1', { tls: { servername: 'localhost' } }),
    ).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });
});

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `payload` in 256 KiB pieces while reading everything the peer sends until its end; then closes. */
async function exchange(stream: SocketStream, payload: Uint8Array): Promise<Buffer> {
  const writing = (async () => {
    for (let at = 0; at < payload.length; at += 256 * 1024)
      await stream.writeSequence(payload, at, Math.min(at + 256 * 1024, payload.length));
    await stream.finishOutput();
    await stream.socket.end();
  })();
  const chunks: Uint8Array[] = [];
  for (let chunk = await stream.readAvailable(); chunk !== null; chunk = await stream.readAvailable())
    chunks.push(chunk);
  await writing;
  await stream.close();
  return Buffer.concat(chunks);
}
