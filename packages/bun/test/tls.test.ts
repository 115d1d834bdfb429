import { afterAll, afterEach, describe, expect, it } from 'bun:test';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { listenBacklog, within } from '@comm/conformance';
import type {
  Connection,
  Listener,
  ListenSpec,
  StartUpServerOptions,
  TlsServerSpec,
} from '@comm/core/backend';
import {
  attachSsl,
  backend,
  ConnectionError,
  createSslClientContext,
  createSslServerContext,
  openTcpStream,
  type SocketHandle,
  SocketStream,
  StartupCondition,
  serverTerminate,
  startUpServer,
} from '../src/index.js';
import { startEmfileServer } from './emfile.js';

// TLS (R22) on Bun.listen / Bun.connect / upgradeTLS, against peers that are not @comm: Python's ssl
// module (OpenSSL), and Bun's own node:tls. Certificates are made here with the system's openssl.

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const written = (write: Promise<void> | undefined): Promise<void> => write ?? Promise.resolve();

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error('cleanup failed:', error);
    }
  }
});

// ---- certificates ----

const dir = mkdtempSync(join(tmpdir(), 'comm-bun-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A key and a certificate for `cn` with `extensions` (one per line), signed by the test authority. */
function signed(name: string, cn: string, extensions: string): void {
  openssl('req', ...EC, '-subj', `/CN=${cn}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
  writeFileSync(file(`${name}.ext`), extensions);
  openssl(
    'x509',
    '-req',
    '-in',
    file(`${name}.csr`),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file(`${name}.ext`),
    '-out',
    file(`${name}.pem`),
  );
}

openssl(
  'req',
  '-x509',
  ...EC,
  '-days',
  '2',
  '-subj',
  '/CN=comm test CA',
  '-addext',
  'basicConstraints=critical,CA:TRUE',
  '-addext',
  'keyUsage=critical,keyCertSign,cRLSign',
  '-keyout',
  file('ca.key'),
  '-out',
  file('ca.pem'),
);
signed(
  'server',
  'localhost',
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
);
signed(
  'client',
  'comm-test-client',
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
);
// The server's key under a passphrase.
openssl(
  'pkcs8',
  '-topk8',
  '-in',
  file('server.key'),
  '-v2',
  'aes-256-cbc',
  '-passout',
  'pass:sesame',
  '-out',
  file('server-encrypted.key'),
);

const caFile = file('ca.pem');
const serverCtx = (over: { handshakeTimeout?: number; requestCert?: boolean } = {}) =>
  createSslServerContext({
    certFile: file('server.pem'),
    keyFile: file('server.key'),
    ...(over.requestCert ? { caFile, requestCert: true } : {}),
    ...(over.handshakeTimeout !== undefined ? { handshakeTimeout: over.handshakeTimeout } : {}),
  });

// ---- peers ----

const PEER = new URL('fixtures/tls-peer.py', import.meta.url).pathname;

interface Peer {
  readonly child: ChildProcess;
  /** The first line the peer printed that starts with `prefix`, without it. */
  line(prefix: string, ms?: number): Promise<string>;
  readonly exited: Promise<number | null>;
}

function python(...args: string[]): Peer {
  const child = spawn('python3', [PEER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: string[] = [];
  let err = '';
  let wake: (() => void) | null = null;
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    wake?.();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => wake?.());
  return {
    child,
    exited,
    line: (prefix, ms = 10_000) =>
      within(
        (async () => {
          for (;;) {
            const found = lines.find((l) => l.startsWith(`${prefix} `) || l === prefix);
            if (found !== undefined) return found.slice(prefix.length + 1);
            if (child.exitCode !== null)
              throw new Error(`tls-peer.py exited without "${prefix}": ${lines.join(' | ')} ${err}`);
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
        })(),
        ms,
        `the peer's "${prefix}" line`,
      ),
  };
}

/** A server on 127.0.0.1 with `function`, terminated after the test. */
async function server(options: StartUpServerOptions): Promise<{ port: number }> {
  const [started, condition] = await startUpServer({
    service: 0,
    address: '127.0.0.1',
    ...options,
    wait: true,
  });
  if (!started) throw condition;
  cleanups.push(() => serverTerminate(started));
  return { port: started.socket?.local.port as number };
}

/** A function that answers one line with the line, the SNI name and the protocol, then closes. */
async function lineServer(handle: SocketHandle): Promise<void> {
  const stream = new SocketStream({ socket: handle, direction: 'io' });
  const line = await stream.readLine();
  await stream.writeLine(`${line} ${handle.tls?.servername} ${handle.tls?.protocol}`);
  await stream.close();
}

describe('bun backend TLS (R22)', () => {
  it('a TLS server talks to Python: the SNI name and protocol reach the function, and end() sends close_notify', async () => {
    const { port } = await server({ sslCtx: serverCtx(), function: lineServer });
    const peer = python('client', String(port), 'localhost', caFile, 'hello');
    expect(await peer.line('VERSION')).toBe('TLSv1.3');
    expect(await peer.line('DATA')).toBe(`'hello localhost TLSv1.3\\n'`);
    expect(await peer.line('EOF')).toBe('close_notify');
    // Without SNI the function is told null.
    const bare = python('client', String(port), '-', caFile, 'bare');
    expect(await bare.line('DATA')).toBe(`'bare null TLSv1.3\\n'`);
    expect(await bare.line('EOF')).toBe('close_notify');
  }, 20_000);

  it('clients that never say hello hold up no other, and are closed at the handshake timeout', async () => {
    const { port } = await server({ sslCtx: serverCtx({ handshakeTimeout: 1 }), function: lineServer });
    const closedAt: number[] = [];
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const silent = net.connect({ host: '127.0.0.1', port });
      cleanups.push(() => silent.destroy());
      silent.on('error', () => {});
      silent.on('close', () => closedAt.push(performance.now() - started));
    }
    await sleep(100);
    const stream = await openTcpStream('127.0.0.1', port, {
      sslCtx: createSslClientContext({ caFile }),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    await stream.writeLine('prompt');
    await stream.finishOutput();
    expect(await within(stream.readLine(), 5000, 'the reply')).toBe('prompt localhost TLSv1.3');
    // Served while the silent ones still wait for their timeout.
    expect(closedAt).toEqual([]);
    expect(performance.now() - started).toBeLessThan(900);
    await within(
      (async () => {
        while (closedAt.length < 5) await sleep(20);
      })(),
      5000,
      'the silent clients closed',
    );
    for (const at of closedAt) expect(at).toBeGreaterThanOrEqual(950);
  }, 20_000);

  it('openTcpStream verifies the certificate and the name; a failure is a TLS condition with the code, and the server goes on', async () => {
    const { port } = await server({ sslCtx: serverCtx(), function: lineServer });
    const attempt = async (options: Parameters<typeof openTcpStream>[2]) => {
      try {
        const stream = await openTcpStream('127.0.0.1', port, { ...options, errorp: true });
        if (!stream) throw new Error('no stream');
        await stream.writeLine('hi');
        await stream.finishOutput();
        const reply = await within(stream.readLine(), 5000, 'the reply');
        await stream.close();
        return reply;
      } catch (error) {
        return error;
      }
    };
    const trusted = createSslClientContext({ caFile });
    expect(await attempt({ sslCtx: trusted, tlsextHostName: 'localhost' })).toBe('hi localhost TLSv1.3');
    // An IP literal without a name: the address is verified (the certificate has IP:127.0.0.1), and
    // no SNI is sent (Bun would send the address, which RFC 6066 forbids).
    expect(await attempt({ sslCtx: trusted })).toBe('hi null TLSv1.3');

    const wrongName = await attempt({ sslCtx: trusted, tlsextHostName: 'other.test' });
    expect(wrongName).toBeInstanceOf(ConnectionError);
    expect(wrongName).toMatchObject({ tls: true, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });

    // The system's roots do not know the test authority.
    const untrusted = await attempt({ sslCtx: true, tlsextHostName: 'localhost' });
    expect(untrusted).toBeInstanceOf(ConnectionError);
    expect(untrusted).toMatchObject({ tls: true });
    expect((untrusted as ConnectionError).code).toMatch(/UNABLE_TO|CERT|SELF_SIGNED/);

    // errorp false: null.
    expect(
      await openTcpStream('127.0.0.1', port, { sslCtx: trusted, tlsextHostName: 'other.test' }),
    ).toBeNull();

    // verify: false accepts the name that does not match.
    expect(
      await attempt({ sslCtx: createSslClientContext({ verify: false }), tlsextHostName: 'other.test' }),
    ).toBe('hi other.test TLSv1.3');
    // The failed handshakes cost their own connections only.
    expect(await attempt({ sslCtx: trusted, tlsextHostName: 'localhost' })).toBe('hi localhost TLSv1.3');
  }, 30_000);

  it('closing a TLS client stream sends close_notify; a Python server sees every line', async () => {
    const peer = python('server', file('server.pem'), file('server.key'));
    const port = Number(await peer.line('PORT'));
    const stream = await openTcpStream('127.0.0.1', port, {
      sslCtx: createSslClientContext({ caFile }),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    expect(stream.socket.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    await stream.writeLine('one');
    await stream.writeLine('two');
    await stream.close();
    expect(await peer.line('DATA')).toBe(`'one\\ntwo\\n'`);
    expect(await peer.line('EOF')).toBe('close_notify');
  }, 15_000);

  it('requestCert: a client without a certificate the ca signed never reaches the function; one with it does', async () => {
    const { port } = await server({ sslCtx: serverCtx({ requestCert: true }), function: lineServer });
    const without = await openTcpStream('127.0.0.1', port, {
      sslCtx: createSslClientContext({ caFile }),
      tlsextHostName: 'localhost',
      errorp: true,
    }).then(
      async (stream) => {
        // TLS 1.3: the client's handshake is over before the server has judged its certificate.
        if (!stream) return null;
        await stream.writeLine('hi');
        await stream.finishOutput().catch(() => {});
        return stream.readLine().catch(() => null);
      },
      () => null,
    );
    expect(without).toBeNull();
    const stream = await openTcpStream('127.0.0.1', port, {
      sslCtx: createSslClientContext({ caFile, certFile: file('client.pem'), keyFile: file('client.key') }),
      tlsextHostName: 'localhost',
      errorp: true,
    });
    if (!stream) throw new Error('no stream');
    await stream.writeLine('with');
    await stream.finishOutput();
    expect(await within(stream.readLine(), 5000, 'the reply')).toBe('with localhost TLSv1.3');
    await stream.close();
  }, 15_000);

  it('STARTTLS as the client (upgradeTLS) against a Python server, with close_notify at the end', async () => {
    const peer = python('starttls-server', file('server.pem'), file('server.key'));
    const port = Number(await peer.line('PORT'));
    const stream = await openTcpStream('127.0.0.1', port, { errorp: true });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    expect(await stream.readLine()).toBe('220 ready');
    await stream.writeLine('STARTTLS');
    await stream.finishOutput();
    expect(await stream.readLine()).toBe('go');
    expect(stream.socket.tls).toBeNull();
    await attachSsl(stream, { sslCtx: createSslClientContext({ caFile }), tlsextHostName: 'localhost' });
    expect(stream.socket.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(await peer.line('VERSION')).toBe('TLSv1.3');
    await stream.writeLine('secret');
    await stream.finishOutput();
    expect(await within(stream.readLine(), 5000, 'the echo')).toBe('echo: secret');
    await stream.close();
    expect(await peer.line('EOF')).toBe('close_notify');
  }, 15_000);

  it('STARTTLS as the client fails with the verification code when the name does not match', async () => {
    const peer = python('starttls-server', file('server.pem'), file('server.key'));
    const port = Number(await peer.line('PORT'));
    const stream = await openTcpStream('127.0.0.1', port, { errorp: true });
    if (!stream) throw new Error('no stream');
    cleanups.push(() => stream.close({ abort: true }));
    await stream.readLine();
    await stream.writeLine('STARTTLS');
    await stream.finishOutput();
    await stream.readLine();
    const failed = await attachSsl(stream, {
      sslCtx: createSslClientContext({ caFile }),
      tlsextHostName: 'other.test',
    }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(ConnectionError);
    expect(failed).toMatchObject({ tls: true, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  }, 15_000);

  it('STARTTLS as the server (upgradeTLS with isServer) for a Python client', async () => {
    const { port } = await server({
      function: async (handle: SocketHandle) => {
        const stream = new SocketStream({ socket: handle, direction: 'io' });
        await stream.writeLine('220 ready');
        await stream.finishOutput();
        if ((await stream.readLine()) !== 'STARTTLS') return stream.close();
        await stream.writeLine('go');
        await stream.finishOutput();
        await attachSsl(stream, { sslCtx: serverCtx() });
        await lineServer(handle);
      },
    });
    const peer = python('starttls-client', String(port), caFile, 'upgraded');
    expect(await peer.line('GREETING')).toBe(`'220 ready\\n'`);
    expect(await peer.line('REPLY')).toBe(`'go\\n'`);
    expect(await peer.line('VERSION')).toBe('TLSv1.3');
    expect(await peer.line('DATA')).toBe(`'upgraded localhost TLSv1.3\\n'`);
    expect(await peer.line('EOF')).toBe('close_notify');
  }, 15_000);

  it('an encrypted key opens with its passphrase; a wrong one fails to listen', async () => {
    const withPassphrase = (password: string) =>
      createSslServerContext({
        certFile: file('server.pem'),
        keyFile: file('server-encrypted.key'),
        password,
      });
    const { port } = await server({ sslCtx: withPassphrase('sesame'), function: lineServer });
    const peer = python('client', String(port), 'localhost', caFile, 'locked');
    expect(await peer.line('DATA')).toBe(`'locked localhost TLSv1.3\\n'`);
    const [none, condition] = await startUpServer({
      service: 0,
      address: '127.0.0.1',
      sslCtx: withPassphrase('wrong'),
      function: lineServer,
      wait: true,
    });
    expect(none).toBeNull();
    expect(condition).toBeInstanceOf(StartupCondition);
  }, 15_000);
});

// ---- the seam over TLS ----

const certPem = async () => readFileSync(file('server.pem'), 'utf8');
const keyPem = async () => readFileSync(file('server.key'), 'utf8');
const caPem = async () => readFileSync(caFile, 'utf8');

async function tlsSpec(): Promise<TlsServerSpec> {
  return {
    cert: await certPem(),
    key: await keyPem(),
    requestCert: false,
    files: { cert: file('server.pem'), key: file('server.key') },
  };
}

async function tlsListener(over: Partial<ListenSpec> = {}): Promise<Listener> {
  const listener = await backend.listen({
    host: '127.0.0.1',
    port: 0,
    family: 4,
    ipv6Only: false,
    backlog: 16,
    reusePort: false,
    tls: await tlsSpec(),
    ...over,
  });
  cleanups.push(() => listener.close());
  return listener;
}

async function accepted(listener: Listener): Promise<Connection> {
  const connection = await within(listener.accept(), 5000, 'accept');
  if (!connection) throw new Error('the listener was closed');
  cleanups.push(() => connection.destroy());
  return connection;
}

async function tlsClient(port: number): Promise<Connection> {
  const connection = await backend.connect({
    host: '127.0.0.1',
    port,
    family: 4,
    tls: { ca: await caPem(), verify: true, servername: 'localhost' },
  });
  cleanups.push(() => connection.destroy());
  return connection;
}

function pattern(size: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >>> 13) + seed) & 0xff;
  return bytes;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function readAll(connection: Connection, slowly = false): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
    chunks.push(chunk);
    if (slowly && chunks.length % 16 === 0) await sleep(5);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

describe('bun backend seam over TLS', () => {
  it('accept() gives the connection before its handshake; handshake() settles and tls tells the name', async () => {
    const listener = await tlsListener();
    const silent = net.connect({ host: '127.0.0.1', port: listener.local.port });
    cleanups.push(() => silent.destroy());
    const first = await accepted(listener);
    expect(first.tls).toBeNull();
    let settled = false;
    void first.handshake?.().then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    const client = await tlsClient(listener.local.port);
    const second = await accepted(listener);
    await within(Promise.all([second.handshake?.(), client.handshake?.()]), 5000, 'the handshakes');
    expect(second.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(client.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(settled).toBe(false);
    // A peer that speaks no TLS: the handshake rejects with the runtime's code.
    silent.write('GET / HTTP/1.0\r\n\r\n');
    const failure = await within(
      (first.handshake?.() ?? Promise.resolve()).then(
        () => null,
        (error: unknown) => error,
      ),
      5000,
      'the failed handshake',
    );
    expect(failure).toBeInstanceOf(Error);
    expect(typeof (failure as { code?: unknown }).code).toBe('string');
  }, 15_000);

  it('32 MiB each way with a reader that waits: writes stay pending until the peer reads (R16a), byte-exact', async () => {
    const listener = await tlsListener();
    const client = await tlsClient(listener.local.port);
    const connection = await accepted(listener);
    await within(Promise.all([connection.handshake?.(), client.handshake?.()]), 5000, 'the handshakes');
    const size = 32 * 1024 * 1024;
    const down = pattern(size, 1);
    const up = pattern(size, 2);
    const writes = [
      written(connection.write(down.slice())).then(() => connection.end()),
      written(client.write(up.slice())).then(() => client.end()),
    ];
    let done = 0;
    for (const w of writes)
      void w.then(() => {
        done += 1;
      });
    // Neither side reads: each socket is paused, the kernel's buffers fill, and both writes wait.
    await sleep(300);
    expect(done).toBe(0);
    const [atClient, atServer] = await within(
      Promise.all([readAll(client, true), readAll(connection)]),
      30_000,
      'the data',
    );
    await within(Promise.all(writes), 10_000, 'the writes');
    expect(atClient.length).toBe(size);
    expect(atServer.length).toBe(size);
    expect(firstDifference(atClient, down)).toBe(-1);
    expect(firstDifference(atServer, up)).toBe(-1);
  }, 60_000);

  it('after our end() (close_notify, FIN) the peer still sends, and every byte is read', async () => {
    const listener = await tlsListener();
    const client = await tlsClient(listener.local.port);
    const connection = await accepted(listener);
    await within(Promise.all([connection.handshake?.(), client.handshake?.()]), 5000, 'the handshakes');
    await connection.write(encoder.encode('bye\n'));
    await connection.end();
    expect(new TextDecoder().decode(await within(readAll(client), 5000, 'the reply'))).toBe('bye\n');
    const request = pattern(2 * 1024 * 1024, 3);
    await within(written(client.write(request.slice())), 10_000, 'the late write');
    await client.end();
    const got = await within(readAll(connection), 10_000, 'the late data');
    expect(firstDifference(got, request)).toBe(-1);
  }, 20_000);

  it('STARTTLS over the seam: both sides upgrade, 16 MiB flows with backpressure, and a TLS connection cannot start TLS again', async () => {
    const listener = await backend.listen({
      host: '127.0.0.1',
      port: 0,
      family: 4,
      ipv6Only: false,
      backlog: 16,
      reusePort: false,
    });
    cleanups.push(() => listener.close());
    const plainClient = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
    cleanups.push(() => plainClient.destroy());
    const plainServer = await accepted(listener);
    // No read before the upgrade: both plain sockets are paused, and the upgrade must read anyway.
    const secureServer = plainServer.startTls?.({ side: 'server', spec: await tlsSpec() });
    const secureClient = plainClient.startTls?.({
      side: 'client',
      spec: { ca: await caPem(), verify: true, servername: 'localhost' },
    });
    if (!secureServer || !secureClient) throw new Error('no startTls');
    cleanups.push(() => secureServer.destroy());
    cleanups.push(() => secureClient.destroy());
    await within(
      Promise.all([secureServer.handshake?.(), secureClient.handshake?.()]),
      5000,
      'the handshakes',
    );
    expect(secureServer.tls).toEqual({ servername: 'localhost', protocol: 'TLSv1.3' });
    expect(() => secureServer.startTls?.({ side: 'server', spec: {} as TlsServerSpec })).toThrow();
    const size = 16 * 1024 * 1024;
    const data = pattern(size, 4);
    const writing = written(secureServer.write(data.slice())).then(() => secureServer.end());
    let done = false;
    void writing.then(() => {
      done = true;
    });
    await sleep(300);
    expect(done).toBe(false);
    const got = await within(readAll(secureClient, true), 30_000, 'the data');
    await within(writing, 5000, 'the write');
    expect(firstDifference(got, data)).toBe(-1);
  }, 45_000);

  it('bytes that reached the plain connection after its last read fail the STARTTLS handshake at once', async () => {
    const listener = await backend.listen({
      host: '127.0.0.1',
      port: 0,
      family: 4,
      ipv6Only: false,
      backlog: 16,
      reusePort: false,
    });
    cleanups.push(() => listener.close());
    const peer = net.connect({ host: '127.0.0.1', port: listener.local.port });
    cleanups.push(() => peer.destroy());
    const plain = await accepted(listener);
    peer.write('STARTTLS\n');
    expect(new TextDecoder().decode((await within(plain.read(), 5000, 'the command')) ?? undefined)).toBe(
      'STARTTLS\n',
    );
    // The peer does not wait for the go-ahead: its next bytes land in the plain connection's read-ahead.
    peer.write('\x16\x03\x01 too early');
    await sleep(100);
    const secure = plain.startTls?.({ side: 'server', spec: await tlsSpec() });
    if (!secure) throw new Error('no startTls');
    cleanups.push(() => secure.destroy());
    const started = performance.now();
    const failure = await within(
      (secure.handshake?.() ?? Promise.resolve()).then(
        () => null,
        (error: unknown) => error,
      ),
      5000,
      'the handshake',
    );
    expect(failure).toMatchObject({ code: 'EPROTO' });
    expect(performance.now() - started).toBeLessThan(1000);
  }, 15_000);

  it("a TLS listener keeps the plain one's options: backlog, EADDRINUSE without reusePort, sharing with it", async () => {
    const listener = await tlsListener({ backlog: 17 });
    expect(await listenBacklog(listener.local.port)).toBe(17);
    const port = listener.local.port;
    await expect(tlsListener({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    const shared = await tlsListener({ reusePort: true });
    const again = await tlsListener({ port: shared.local.port, reusePort: true });
    expect(again.local.port).toBe(shared.local.port);
  }, 10_000);

  it('writeText over TLS: multi-byte text larger than the kernel takes arrives byte-exact', async () => {
    const listener = await tlsListener();
    const client = await tlsClient(listener.local.port);
    const connection = await accepted(listener);
    await within(Promise.all([connection.handshake?.(), client.handshake?.()]), 5000, 'the handshakes');
    const text = 'ä€𝄞 line of text\n'.repeat(400_000);
    const pending = connection.writeText?.(text);
    // More than the kernel takes at once: Bun wrote part of it, and the rest waits for `drain`.
    expect(pending).toBeInstanceOf(Promise);
    const writing = written(pending).then(() => connection.end());
    const got = await within(readAll(client, true), 20_000, 'the text');
    await within(writing, 5000, 'the write');
    expect(new TextDecoder().decode(got) === text).toBe(true);
  }, 30_000);

  it('a Node (node:tls) client of a Bun TLS listener: the name it sends is the one the server reads', async () => {
    const listener = await tlsListener();
    const socket = tls.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      servername: 'localhost',
      ca: await caPem(),
    });
    cleanups.push(() => socket.destroy());
    const connection = await accepted(listener);
    await within(connection.handshake?.() ?? Promise.resolve(), 5000, 'the handshake');
    expect(connection.tls?.servername).toBe('localhost');
  }, 10_000);
});

describe('bun TLS backend at the descriptor limit (R14a)', () => {
  it('TLS connections past the limit are reset, and served again once descriptors are free', async () => {
    const NOFILE = 64;
    const { port, output } = await startEmfileServer(
      NOFILE,
      [file('server.pem'), file('server.key')],
      cleanups,
    );
    const ca = await caPem();
    const firstLine = (timeoutMs: number) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca });
      cleanups.push(() => socket.destroy());
      const outcome = new Promise<string>((resolve) => {
        let text = '';
        const timer = setTimeout(() => resolve('no reply'), timeoutMs);
        const done = (what: string) => {
          clearTimeout(timer);
          resolve(what);
        };
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n')) done(text.trim());
        });
        socket.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? 'error'));
        socket.on('close', () => done('closed'));
      });
      return { socket, outcome };
    };
    const clients = Array.from({ length: 2 * NOFILE }, () => firstLine(10_000));
    const outcomes = await Promise.all(clients.map((c) => c.outcome));
    const served = outcomes.filter((o) => o === 'served').length;
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(NOFILE);
    expect(outcomes.filter((o) => o === 'no reply')).toEqual([]);
    for (const [k, client] of clients.entries()) if (outcomes[k] === 'served') client.socket.destroy();
    await sleep(300);
    expect(await firstLine(5000).outcome).toBe('served');
    expect(output()).not.toContain('END ');
  }, 30_000);
});
