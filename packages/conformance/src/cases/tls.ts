/**
 * R22: TLS as LispWorks 8 has it. Servers with `sslCtx`, clients with `openTcpStream(..., { sslCtx })`,
 * STARTTLS with `attachSsl`, all through the backend module's exports. The certificates are made
 * with the system's `openssl` (./certificates.ts); the independent peer is Python's `ssl` module
 * (fixtures/tls-peer.py), which speaks comm-stream over a WebSocket to a backend whose bytes travel
 * in WebSocket messages (uWS).
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import type {
  AnyServerOptions,
  attachSsl,
  Connection,
  ConnectionError,
  createSslClientContext,
  createSslServerContext,
  OpenTcpStreamOptions,
  SocketStream,
  SslClientContext,
  SslClientContextOptions,
  SslServerContext,
  SslServerContextOptions,
} from '@comm/core/backend';
import { kernelTaken, tcpCounters } from '../kernel.js';
import type { CaseContext } from '../suite.js';
import { defineCase, fixturePath, within } from '../suite.js';
import { type CertificatePair, certificates } from './certificates.js';
import { serve, stream } from './helpers.js';

// ---- helpers ----

const KiB = 1024;
const MiB = 1024 * KiB;

/** What R22 adds to a backend module's exports (every backend re-exports @comm/core). */
interface TlsApi {
  readonly createSslServerContext: typeof createSslServerContext;
  readonly createSslClientContext: typeof createSslClientContext;
  readonly attachSsl: typeof attachSsl;
  readonly ConnectionError: typeof ConnectionError;
}

function tlsApi(t: CaseContext): TlsApi {
  const api = t.api as unknown as Record<string, unknown>;
  for (const name of ['createSslServerContext', 'createSslClientContext', 'attachSsl', 'ConnectionError'])
    if (typeof api[name] !== 'function')
      throw new Error(`the ${t.api.backend.name} module exports no ${name} (is its dist built with R22?)`);
  return api as unknown as TlsApi;
}

/** A server context with `pair` (the CA-signed localhost certificate by default). */
function serverContext(
  t: CaseContext,
  pair: CertificatePair = certificates().server,
  more: Partial<SslServerContextOptions> = {},
): SslServerContext {
  return tlsApi(t).createSslServerContext({ certFile: pair.certFile, keyFile: pair.keyFile, ...more });
}

/** A client context that trusts the test CA (and nothing else). */
function trustingContext(t: CaseContext, more: SslClientContextOptions = {}): SslClientContext {
  return tlsApi(t).createSslClientContext({ caFile: certificates().ca.certFile, ...more });
}

/** A TLS server whose connections run `body`; `calls()` counts the connections that reached `function`. */
async function tlsServer(
  t: CaseContext,
  ctx: SslServerContext,
  body: (handle: Connection) => Promise<unknown>,
): Promise<{ port: number; calls: () => number; result: (n?: number, ms?: number) => Promise<unknown> }> {
  let calls = 0;
  const served = await serve(
    t,
    async (handle) => {
      calls++;
      return body(handle);
    },
    { sslCtx: ctx },
  );
  return { ...served, calls: () => calls };
}

/** A `function` that says `hello` and closes. */
async function hello(t: CaseContext, handle: Connection): Promise<unknown> {
  const s = stream(t, handle);
  await s.writeLine('hello');
  await s.close();
  return handle.tls ?? null;
}

/**
 * A `function` that answers `echo <line>` to each line until `bye`, answers `bye` and closes;
 * resolves to the lines and what `handle.tls` said.
 */
async function echo(t: CaseContext, handle: Connection): Promise<{ lines: string[]; tls: unknown }> {
  const s = stream(t, handle, { readTimeout: 10 });
  const lines: string[] = [];
  for (let line = await s.readLine(); line !== null && line !== 'bye'; line = await s.readLine()) {
    lines.push(line);
    await s.writeLine(`echo ${line}`);
    s.forceOutput();
  }
  await s.writeLine('bye');
  await s.close();
  return { lines, tls: handle.tls ?? null };
}

/** @comm's client (the backend's `openTcpStream`) with TLS to 127.0.0.1; closed after the case. */
async function openTls(
  t: CaseContext,
  port: number,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream | null> {
  const connecting = t.api.openTcpStream('127.0.0.1', port, {
    sslCtx: trustingContext(t),
    tlsextHostName: 'localhost',
    readTimeout: 10,
    ...options,
  });
  const s = await within(connecting, 15_000, `openTcpStream with TLS to port ${port}`);
  if (s) t.defer(() => s.close({ abort: true }));
  return s;
}

/** `openTls` that must succeed. */
async function openTlsOk(
  t: CaseContext,
  port: number,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream> {
  const s = await openTls(t, port, { ...options, errorp: true });
  assert.ok(s, 'openTcpStream with errorp gave null');
  return s;
}

/** The condition `promise` rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>, what: string): Promise<ConnectionError> {
  let value: unknown;
  try {
    value = await within(promise, 15_000, what);
  } catch (error) {
    return error as ConnectionError;
  }
  if (value && typeof (value as SocketStream).close === 'function')
    void (value as SocketStream).close({ abort: true });
  return assert.fail(`${what} succeeded: it should have been refused`);
}

function assertTlsCondition(t: CaseContext, error: unknown, what: string): void {
  const { ConnectionError } = tlsApi(t);
  assert.ok(
    error instanceof ConnectionError,
    `${what}: expected a ConnectionError, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
  );
  assert.equal(error.tls, true, `${what}: the condition's tls should be true (${error.message})`);
}

/** The TLS version a `tls` info or Python names, like TLSv1.3. */
const PROTOCOL = /^TLSv1\.[23]$/;

/**
 * The handshake's info (`handle.tls`, `stream.socket.tls`): an object whose protocol is TLSv1.2 or
 * TLSv1.3, or null where the runtime cannot tell (the seam's `TlsInfo`: Deno and uWS do not say).
 */
function assertTlsInfo(info: unknown, what: string): { servername: string | null; protocol: string | null } {
  assert.ok(
    info && typeof info === 'object',
    `${what}: tls is ${JSON.stringify(info)}, not the handshake's info`,
  );
  const { servername, protocol } = info as { servername: string | null; protocol: string | null };
  if (protocol !== null)
    assert.match(String(protocol), PROTOCOL, `${what}: tls.protocol is ${JSON.stringify(protocol)}`);
  assert.ok(
    servername === null || typeof servername === 'string',
    `${what}: tls.servername is ${JSON.stringify(servername)}`,
  );
  return { servername, protocol };
}

/** A line from @comm's client, within 5 s. */
function line(s: SocketStream): Promise<string | null> {
  return within(s.readLine(), 5000, 'a line from the server');
}

/** Whether the server's byte stream travels in WebSocket messages (uWS): its suite transport says so. */
function wsSubprotocol(t: CaseContext): string | null {
  const transported = t.subject.transport !== undefined || typeof t.api.conformanceTransport === 'function';
  if (!transported) return null;
  const protocol = t.api.protocol as { SUBPROTOCOL?: unknown } | undefined;
  return typeof protocol?.SUBPROTOCOL === 'string' ? protocol.SUBPROTOCOL : 'comm-stream';
}

/** Python's `ssl` module as an independent peer (fixtures/tls-peer.py), its process group killed after the case. */
interface Peer {
  readonly child: ChildProcess;
  line(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** A line on its stdin. */
  tell(text: string): void;
  /** The JSON of its RESULT line. */
  result(ms?: number): Promise<Record<string, unknown>>;
}

function pythonPeer(t: CaseContext, mode: string, args: readonly string[]): Peer {
  const child = spawn('python3', [fixturePath('tls-peer.py'), mode, ...args], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let done = false;
  let spawnError: Error | null = null;
  const wake: Array<() => void> = [];
  const notify = () => {
    for (const w of wake.splice(0)) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  child.stdin?.on('error', () => {});
  child.on('error', (error) => {
    spawnError = error;
    done = true;
    notify();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      // Its last output may still be in the pipe.
      setTimeout(() => {
        done = true;
        notify();
        resolve();
      }, 50);
    });
  });
  t.defer(async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
    if (!spawnError) await exited;
  });
  const peer: Peer = {
    child,
    line(pattern, ms = 15_000) {
      const find = async (): Promise<RegExpMatchArray> => {
        for (;;) {
          for (const l of out.split('\n')) {
            const match = l.match(pattern);
            if (match) return match;
          }
          if (done) {
            const why = spawnError ? `python3 did not start: ${spawnError.message}` : `stderr: ${err.trim()}`;
            throw new Error(`the Python peer (${mode}) ended before printing ${pattern}; ${why}`);
          }
          await new Promise<void>((resolve) => wake.push(resolve));
        }
      };
      return within(find(), ms, `the Python peer (${mode}) to print ${pattern}`);
    },
    tell(text) {
      child.stdin?.write(`${text}\n`);
    },
    async result(ms) {
      const [, json] = await peer.line(/^RESULT (.*)$/, ms);
      return JSON.parse(json as string) as Record<string, unknown>;
    },
  };
  return peer;
}

/** The Python peer's arguments to reach a server of this backend on `port`, trusting the test CA. */
function peerArgs(t: CaseContext, port: number, more: readonly string[] = []): string[] {
  const ws = wsSubprotocol(t);
  return [
    '--port',
    String(port),
    '--ca',
    certificates().ca.certFile,
    '--servername',
    'localhost',
    ...(ws ? ['--ws', ws] : []),
    ...more,
  ];
}

/** Resolves once `socket` (node:net, in the case's runtime) is closed by its peer; the time it took from `since`. */
function closedWithin(socket: net.Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    const done = () => resolve(Date.now() - since);
    if (socket.destroyed) done();
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  });
}

/** A raw node:net client to 127.0.0.1:`port` that sends `bytes` (nothing if empty); destroyed after the case. */
async function rawTcp(
  t: CaseContext,
  port: number,
  bytes: Uint8Array = new Uint8Array(0),
): Promise<{ socket: net.Socket; closed: Promise<number>; open: () => boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  t.defer(() => socket.destroy());
  socket.on('data', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const since = Date.now();
  let ended = false;
  const closed = closedWithin(socket, since).then((ms) => {
    ended = true;
    return ms;
  });
  if (bytes.length > 0) socket.write(bytes);
  return { socket, closed, open: () => !ended };
}

// ---- R22 ----

defineCase(
  'R22.talk-over-tls',
  "a TLS server and @comm's own TLS client (trusting the test CA) exchange lines both ways; both ends' tls gives the handshake's info",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => echo(t, h));
    const s = await openTlsOk(t, port);
    const words = ['one', 'two', 'grüße ✓', 'x'.repeat(20_000)];
    for (const word of words) {
      await s.writeLine(word);
      s.forceOutput();
      assert.equal(await line(s), `echo ${word}`);
    }
    await s.writeLine('bye');
    s.forceOutput();
    assert.equal(await line(s), 'bye');
    assert.equal(await line(s), null, 'the end of input after bye');
    const served = (await result()) as { lines: string[]; tls: unknown };
    assert.deepEqual(served.lines, words);
    assertTlsInfo(served.tls, "the server's handle");
    assertTlsInfo((s.socket as Connection).tls, "the client's stream.socket");
  },
  20_000,
);

defineCase(
  'R22.independent-client',
  "Python's ssl module (OpenSSL, trusting the test CA) talks to the server; the replies are right",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => echo(t, h));
    const lines = ['one', 'two', 'ünïcödé', 'bye'];
    const peer = pythonPeer(
      t,
      'talk',
      peerArgs(
        t,
        port,
        lines.flatMap((l) => ['--line', l]),
      ),
    );
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.equal(answer.received, 'echo one\necho two\necho ünïcödé\nbye\n');
    assert.match(String(answer.version), PROTOCOL, `Python negotiated ${answer.version}`);
    const served = (await result()) as { lines: string[]; tls: unknown };
    assert.deepEqual(served.lines, ['one', 'two', 'ünïcödé']);
    assertTlsInfo(served.tls, "the server's handle");
  },
  20_000,
);

defineCase(
  'R22.sni-reaches-server',
  "the name the client asks for (SNI) is the server handle's tls.servername and the client's; none asked, none seen",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const named = await openTlsOk(t, port, { tlsextHostName: 'localhost' });
    assert.equal(await line(named), 'hello');
    const seen = assertTlsInfo(await result(0), "the server's handle");
    assert.equal(seen.servername, 'localhost', 'the server should see the SNI name localhost');
    const asked = assertTlsInfo((named.socket as Connection).tls, "the client's stream.socket");
    assert.equal(asked.servername, 'localhost', 'the client should say it asked for localhost');
    // To 127.0.0.1 with no name: no SNI (an IP literal is never one, RFC 6066).
    const byAddress = await openTlsOk(t, port, { tlsextHostName: null });
    assert.equal(await line(byAddress), 'hello');
    const none = assertTlsInfo(await result(1), "the server's handle of a client that asked for no name");
    assert.equal(none.servername, null, 'a client that connected to 127.0.0.1 with no name sent an SNI name');
    // A host name as the hostspec is the name asked for.
    const byName = await within(
      t.api.openTcpStream('localhost', port, { sslCtx: trustingContext(t), errorp: true, ipv6: false }),
      15_000,
      'openTcpStream to localhost',
    );
    assert.ok(byName);
    t.defer(() => byName.close({ abort: true }));
    assert.equal(await line(byName), 'hello');
    const host = assertTlsInfo(await result(2), "the server's handle of a client to localhost");
    assert.equal(host.servername, 'localhost', 'openTcpStream to localhost should ask for localhost');
  },
  20_000,
);

defineCase(
  'R22.untrusted-certificate',
  'a server certificate the client does not trust is refused: null, or a condition with tls true; the server goes on serving',
  async (t) => {
    const { port, calls, result } = await tlsServer(t, serverContext(t, certificates().selfSigned), (h) =>
      hello(t, h),
    );
    const refused = await openTls(t, port, { errorp: false });
    assert.equal(
      refused,
      null,
      'a self-signed certificate was accepted by a client that trusts only the test CA',
    );
    const error = await rejection(openTls(t, port, { errorp: true }), 'connecting to a self-signed server');
    assertTlsCondition(t, error, 'errorp true');
    // The server is still serving: a client that does not verify is answered.
    const s = await openTlsOk(t, port, { sslCtx: tlsApi(t).createSslClientContext({ verify: false }) });
    assert.equal(await line(s), 'hello');
    await result(0);
    await t.sleep(200);
    assert.equal(calls(), 1, 'function was called for a client that refused the certificate');
  },
  20_000,
);

defineCase(
  'R22.host-name-verified',
  "the certificate must name the host asked for: other.test's is refused for localhost and for 127.0.0.1, accepted for other.test",
  async (t) => {
    const other = await tlsServer(t, serverContext(t, certificates().other), (h) => hello(t, h));
    const wrongName = await rejection(
      openTls(t, other.port, { tlsextHostName: 'localhost', errorp: true }),
      "connecting as localhost to other.test's certificate",
    );
    assertTlsCondition(t, wrongName, 'localhost against other.test');
    const byAddress = await rejection(
      openTls(t, other.port, { tlsextHostName: null, errorp: true }),
      "connecting to 127.0.0.1 (no name) with other.test's certificate",
    );
    assertTlsCondition(t, byAddress, '127.0.0.1 against other.test');
    const right = await openTlsOk(t, other.port, { tlsextHostName: 'other.test' });
    assert.equal(await line(right), 'hello');
    // Without verification, the name does not matter.
    const unverified = await openTlsOk(t, other.port, {
      tlsextHostName: 'localhost',
      sslCtx: tlsApi(t).createSslClientContext({ verify: false }),
    });
    assert.equal(await line(unverified), 'hello');
    await other.result(1);
    await t.sleep(200);
    assert.equal(other.calls(), 2, 'function was called for a client that refused the certificate');
    // The address is verified against the certificate's IP SAN: 127.0.0.1 is in localhost's.
    const local = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const ip = await openTlsOk(t, local.port, { tlsextHostName: null });
    assert.equal(await line(ip), 'hello');
  },
  20_000,
);

defineCase(
  'R22.server-handshake-timeout',
  'a client that never says hello is closed after the handshake timeout, and holds up no other client; function never sees it',
  async (t) => {
    const quick = await tlsServer(t, serverContext(t, undefined, { handshakeTimeout: 0.5 }), (h) =>
      hello(t, h),
    );
    const silent = await rawTcp(t, quick.port);
    const after = await openTlsOk(t, quick.port);
    assert.equal(await line(after), 'hello');
    const ms = await within(silent.closed, 5000, 'the silent client to be closed');
    assert.ok(ms >= 400, `the silent client was closed after ${ms} ms, before the timeout of 500 ms`);
    assert.ok(ms <= 3000, `the silent client was closed after ${ms} ms; the timeout is 500 ms`);
    assert.equal(quick.calls(), 1, 'function was called for the silent client');
    // With a long timeout, a silent client waits while a client behind it is served at once.
    const patient = await tlsServer(t, serverContext(t, undefined, { handshakeTimeout: 30 }), (h) =>
      hello(t, h),
    );
    const waiting = await rawTcp(t, patient.port);
    const half = await rawTcp(t, patient.port, Buffer.from([0x16, 0x03, 0x01, 0x00]));
    const started = Date.now();
    const next = await openTlsOk(t, patient.port);
    assert.equal(await line(next), 'hello');
    assert.ok(
      Date.now() - started < 3000,
      `the client behind a silent one waited ${Date.now() - started} ms`,
    );
    assert.ok(waiting.open() && half.open(), 'the silent clients should still be waiting for their timeout');
    assert.equal(patient.calls(), 1);
  },
  20_000,
);

defineCase(
  'R22.client-handshake-timeout',
  'openTcpStream to a server that never answers the hello gives up after handshakeTimeout: null, or ETIMEDOUT with errorp',
  async (t) => {
    const sockets = new Set<net.Socket>();
    const mute = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      mute.once('error', reject);
      mute.listen(0, '127.0.0.1', resolve);
    });
    t.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          mute.close(() => resolve());
        }),
    );
    const port = (mute.address() as net.AddressInfo).port;
    const options = { sslCtx: trustingContext(t), tlsextHostName: 'localhost', handshakeTimeout: 0.5 };
    let started = Date.now();
    const quiet = await within(
      t.api.openTcpStream('127.0.0.1', port, { ...options, errorp: false }),
      5000,
      'openTcpStream to give up',
    );
    let ms = Date.now() - started;
    assert.equal(quiet, null, 'a connection without a handshake was given as a stream');
    assert.ok(ms >= 400 && ms <= 3000, `gave up after ${ms} ms; the handshake timeout is 500 ms`);
    started = Date.now();
    const error = await rejection(
      t.api.openTcpStream('127.0.0.1', port, { ...options, errorp: true }),
      'a handshake with a mute server',
    );
    ms = Date.now() - started;
    assertTlsCondition(t, error, 'the timed-out handshake');
    assert.equal(error.code, 'ETIMEDOUT', `the condition's code is ${error.code}: ${error.message}`);
    assert.ok(ms >= 400 && ms <= 3000, `rejected after ${ms} ms; the handshake timeout is 500 ms`);
    // The attempts are given up: the server's sockets are closed by the client.
    await t.waitFor(() => sockets.size === 0, 'the client to close the connections it gave up', 3000);
  },
  20_000,
);

defineCase(
  'R22.failed-handshake-closes-one',
  'plain text and garbage to a TLS port are closed at once, never reach function, and the next TLS client is served',
  async (t) => {
    const { port, calls } = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const http = await rawTcp(t, port, Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    const garbage = await rawTcp(
      t,
      port,
      Buffer.concat([Buffer.alloc(64, 0xff), Buffer.from('\0not TLS at all\r\n'), randomBytes(256)]),
    );
    for (const [name, client] of Object.entries({ http, garbage })) {
      const ms = await within(client.closed, 5000, `the ${name} client to be closed`);
      assert.ok(
        ms < 3000,
        `the ${name} client was closed after ${ms} ms: by a timeout, not the failed handshake`,
      );
    }
    const s = await openTlsOk(t, port);
    assert.equal(await line(s), 'hello');
    await t.sleep(100);
    assert.equal(calls(), 1, 'function was called for a connection whose handshake failed');
  },
  20_000,
);

/** Bytes each way in R22.ten-mib-each-way. */
const TEN_MIB = 10 * MiB;
const PIECE = 64 * KiB;

async function sendAll(s: SocketStream, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length; at += PIECE)
    await s.writeSequence(data, at, Math.min(data.length, at + PIECE));
  await s.finishOutput();
}

async function hashUntil(s: SocketStream, limit: number): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  while (bytes < limit) {
    const chunk = await s.readAvailable();
    if (chunk === null) break;
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

defineCase(
  'R22.ten-mib-each-way',
  '10 MiB each way at once over TLS (both ends write while they read) arrive byte for byte',
  async (t) => {
    const toServer = randomBytes(TEN_MIB);
    const toClient = randomBytes(TEN_MIB);
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h, { elementType: 'unsigned-byte', readTimeout: 30 });
      const [, got] = await Promise.all([sendAll(s, toClient), hashUntil(s, TEN_MIB)]);
      await s.close();
      return got;
    });
    const s = await openTlsOk(t, port, { elementType: 'unsigned-byte', readTimeout: 30 });
    const [, got] = await within(
      Promise.all([sendAll(s, toServer), hashUntil(s, Number.POSITIVE_INFINITY)]),
      50_000,
      '10 MiB each way',
    );
    const served = (await result(0, 10_000)) as { bytes: number; sha256: string };
    assert.equal(served.bytes, TEN_MIB, `the server received ${served.bytes} bytes`);
    assert.equal(served.sha256, sha256(toServer), 'the bytes the server received differ from those sent');
    assert.equal(got.bytes, TEN_MIB, `the client received ${got.bytes} bytes`);
    assert.equal(got.sha256, sha256(toClient), 'the bytes the client received differ from those sent');
  },
  60_000,
);

// R16a under TLS: the approach of flow.ts's never-reading-peer cases, with Python as the client.

/** The contract's output buffer (R16a). */
const OUTPUT_BUFFER = 64 * KiB;
/** Bytes per line of the writer. */
const WRITER_LINE = 100;
const MILLION = 1_000_000;
const STALL_MS = 500;
/** How much a process may grow, garbage included, while a client reads nothing. */
const RSS_BACKSTOP = 64 * MiB;

/** uWS keeps a WebSocket's bytes in its own buffer (see flow.ts, `transportHeadroom`). */
function transportHeadroom(t: CaseContext): { bytes: number; why: string } {
  if (t.api.backend.name === 'uws')
    return {
      bytes: 256 * KiB + 64 * KiB + 16,
      why: " plus uWS's own buffer (highWater 256 KiB, one 64 KiB message past it)",
    };
  return { bytes: 0, why: '' };
}

function numberedLine(i: number): string {
  const number = String(i).padStart(8, '0');
  return `${number} ${'x'.repeat(WRITER_LINE - number.length - 2)}`;
}

defineCase(
  'R22.backpressure',
  'R16a over TLS: a writer whose TLS client reads nothing waits; beyond what the kernel took, the stream and the TLS layer hold at most 64 KiB plus one write; every line arrives',
  async (t) => {
    const progress = { lines: 0, bytes: 0, done: false };
    let stop = false;
    t.defer(() => {
      stop = true;
    });
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h, { readTimeout: 20 });
      assert.equal(await s.readLine(), 'go');
      let i = 0;
      for (; i < MILLION && !stop; i++) {
        if (i % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
        await s.writeLine(numberedLine(i));
        s.forceOutput();
        progress.lines = i + 1;
        progress.bytes += WRITER_LINE;
      }
      progress.done = i === MILLION;
      await s.close();
      return i;
    });
    const peer = pythonPeer(t, 'silent-reader', peerArgs(t, port));
    const [, localPort] = await peer.line(/^READY (\d+)$/);
    const socket = { localPort: port, remotePort: Number(localPort) };
    // What the kernel took from the server's socket before the writer started (the handshake).
    await t.sleep(100);
    const baseline = kernelTaken(await tcpCounters(socket));
    const rssBefore = process.memoryUsage().rss;
    peer.tell('go');
    const headroom = transportHeadroom(t);
    const bound = OUTPUT_BUFFER + WRITER_LINE + headroom.bytes;
    const what = `the output buffer of 64 KiB plus one write${headroom.why}`;
    let last = -1;
    let lastChange = Date.now();
    let lines = 0;
    for (const until = Date.now() + 8000; ; ) {
      await t.sleep(50);
      const resolved = progress.bytes;
      lines = progress.lines;
      // The kernel counts ciphertext: each record adds its header and tag, so `held` is never
      // overstated, and the runtime's TLS layer must keep within the same bound as the stream.
      const taken = kernelTaken(await tcpCounters(socket)) - baseline;
      const held = resolved - taken;
      assert.ok(
        held <= bound,
        `the stream took ${(held / KiB).toFixed(1)} KiB more than the kernel has (${lines} lines): more than ${what} (${(bound / KiB).toFixed(1)} KiB)`,
      );
      assert.ok(
        !progress.done,
        `the writer wrote all ${lines} lines to a client that reads nothing and never waited`,
      );
      if (resolved !== last) {
        last = resolved;
        lastChange = Date.now();
      } else if (Date.now() - lastChange >= STALL_MS && lines > 0) break;
      assert.ok(Date.now() < until, 'the writer was still making progress after 8 s');
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    assert.ok(
      rssGrowth < RSS_BACKSTOP,
      `the process grew by ${(rssGrowth / MiB).toFixed(1)} MiB while its TLS client read nothing`,
    );
    // The client reads now: every line the stream took arrives, in order.
    stop = true;
    peer.tell('read');
    const [, count, digest] = await peer.line(/^DONE (\d+) ([0-9a-f]+) /, 20_000);
    const written = (await result(0, 20_000)) as number;
    const expected = Buffer.from(Array.from({ length: written }, (_, i) => `${numberedLine(i)}\n`).join(''));
    assert.equal(Number(count), expected.length, `the client received ${count} bytes of ${written} lines`);
    assert.equal(digest, sha256(expected), 'the lines arrived changed or out of order');
  },
  40_000,
);

defineCase(
  'R22.close-notify',
  "stream.close() ends TLS with close_notify: Python's ssl (suppress_ragged_eofs=False) reads to the end without SSLEOFError",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h);
      for (const word of ['one', 'two', 'three']) await s.writeLine(word);
      await s.close();
      return true;
    });
    const peer = pythonPeer(t, 'talk', peerArgs(t, port));
    const answer = await peer.result();
    assert.equal(answer.received, 'one\ntwo\nthree\n');
    assert.equal(answer.eof, 'clean', `the TLS connection ended without close_notify: ${answer.eof}`);
    await result(0);
  },
  20_000,
);

defineCase(
  'R22.client-certificate',
  'a server that asks for client certificates refuses a client without one (or with one the CA did not sign) before function, and serves one the CA signed',
  async (t) => {
    const ca = certificates().ca.certFile;
    const { port, calls } = await tlsServer(
      t,
      serverContext(t, undefined, { requestCert: true, caFile: ca }),
      (h) => hello(t, h),
    );
    /** Refused: no stream, or (TLS 1.3: the client finishes first) one that ends without a word. */
    const refusedWith = async (ctx: SslClientContext, what: string) => {
      const s = await openTls(t, port, { sslCtx: ctx, errorp: false });
      if (s === null) return;
      const got = await within(
        s.readLine().catch(() => null),
        5000,
        `the server to close the connection of a client ${what}`,
      );
      assert.equal(got, null, `a client ${what} was served`);
    };
    await refusedWith(trustingContext(t), 'without a certificate');
    const stranger = certificates().selfSigned;
    await refusedWith(
      trustingContext(t, { certFile: stranger.certFile, keyFile: stranger.keyFile }),
      'with a certificate the CA did not sign',
    );
    const mine = certificates().client;
    const s = await openTlsOk(t, port, {
      sslCtx: trustingContext(t, { certFile: mine.certFile, keyFile: mine.keyFile }),
    });
    assert.equal(await line(s), 'hello');
    await t.sleep(100);
    assert.equal(calls(), 1, 'function was called for a client without a good certificate');
  },
  20_000,
);

defineCase(
  'R22.starttls-server',
  'attachSsl with a server context upgrades an accepted plain connection after STARTTLS/OK; Python talks TLS on it',
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h, { readTimeout: 10 });
      const first = await s.readLine();
      if (first !== 'STARTTLS') return { error: `the client sent ${JSON.stringify(first)}` };
      await s.writeLine('OK');
      await s.finishOutput();
      await tlsApi(t).attachSsl(s, { sslCtx: serverContext(t) });
      const tls = h.tls ?? null;
      const lines: string[] = [];
      for (let l = await s.readLine(); l !== null && l !== 'bye'; l = await s.readLine()) {
        lines.push(l);
        await s.writeLine(`echo ${l}`);
        s.forceOutput();
      }
      await s.writeLine('bye');
      await s.close();
      return { lines, tls };
    });
    const peer = pythonPeer(t, 'starttls-client', [
      '--port',
      String(port),
      '--ca',
      certificates().ca.certFile,
      '--servername',
      'localhost',
      ...['one', 'two', 'bye'].flatMap((l) => ['--line', l]),
    ]);
    // The server's outcome first: where attachSsl refuses, it says why.
    const served = (await result(0, 15_000)) as { lines?: string[]; tls?: unknown; error?: string };
    assert.equal(served.error, undefined, served.error);
    assert.deepEqual(served.lines, ['one', 'two']);
    const info = assertTlsInfo(served.tls, "the server's handle after attachSsl");
    assert.equal(info.servername, 'localhost');
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.equal(answer.received, 'echo one\necho two\nbye\n');
    assert.equal(answer.eof, 'clean', `the upgraded stream's close sent no close_notify: ${answer.eof}`);
  },
  20_000,
);

defineCase(
  'R22.starttls-client',
  'attachSsl with a client context upgrades an openTcpStream stream after STARTTLS/OK (Python is the server); the name is sent and verified',
  async (t) => {
    const cert = certificates().server;
    const peer = pythonPeer(t, 'starttls-server', ['--cert', cert.certFile, '--key', cert.keyFile]);
    const [, port] = await peer.line(/^PORT (\d+)$/);
    const s = await within(
      t.api.openTcpStream('127.0.0.1', Number(port), { errorp: true, readTimeout: 10 }),
      10_000,
      'a plain connection to the Python server',
    );
    assert.ok(s);
    t.defer(() => s.close({ abort: true }));
    await s.writeLine('STARTTLS');
    s.forceOutput();
    assert.equal(await line(s), 'OK');
    await within(
      tlsApi(t).attachSsl(s, { sslCtx: trustingContext(t), tlsextHostName: 'localhost' }),
      10_000,
      'attachSsl as the client',
    );
    const info = assertTlsInfo((s.socket as Connection).tls, "the client's stream.socket after attachSsl");
    assert.equal(info.servername, 'localhost');
    for (const word of ['one', 'two']) {
      await s.writeLine(word);
      s.forceOutput();
      assert.equal(await line(s), `echo ${word}`);
    }
    await s.writeLine('bye');
    s.forceOutput();
    assert.equal(await line(s), 'bye');
    await s.close();
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.deepEqual(answer.lines, ['one', 'two', 'bye']);
    assert.equal(answer.sni, 'localhost', 'the client sent no SNI name');
    assert.match(String(answer.version), PROTOCOL);
    assert.equal(answer.eof, 'clean', `the client's close sent no close_notify: ${answer.eof}`);
  },
  20_000,
);

defineCase(
  'R22.contexts-checked',
  'wrong TLS options are a TypeError at the call that names the file or the option',
  async (t) => {
    const { createSslServerContext, createSslClientContext } = tlsApi(t);
    const { server, ca } = certificates();
    const missing = `${certificates().dir}/no-such-cert.pem`;
    const typeError = (fn: () => unknown, names: readonly string[], what: string) => {
      let outcome: unknown;
      try {
        outcome = fn();
      } catch (error) {
        assert.ok(
          error instanceof TypeError,
          `${what}: ${error instanceof Error ? error.name : typeof error}, not a TypeError: ${String(error)}`,
        );
        for (const name of names)
          assert.ok(
            error.message.includes(name),
            `${what}: the TypeError does not name ${name}: ${error.message}`,
          );
        return;
      }
      // Something started anyway: stop it before failing.
      if (outcome instanceof Promise)
        outcome.then(
          (s) => (s as SocketStream | null)?.close({ abort: true }),
          () => {},
        );
      else if (outcome && typeof outcome === 'object' && 'socket' in outcome)
        t.api.serverTerminate(outcome as never);
      assert.fail(`${what} was accepted`);
    };
    typeError(
      () => createSslServerContext({ certFile: missing, keyFile: server.keyFile }),
      [missing],
      'a missing certFile',
    );
    typeError(
      () => createSslServerContext({ certFile: server.certFile, keyFile: ca.certFile }),
      ['keyFile', ca.certFile],
      'a keyFile that holds a certificate, no key',
    );
    typeError(
      () =>
        createSslServerContext({
          certFile: server.certFile,
          keyFile: server.keyFile,
          verify: false,
        } as never),
      ['verify'],
      'an unknown option of createSslServerContext',
    );
    typeError(
      () =>
        createSslServerContext({ certFile: server.certFile, keyFile: server.keyFile, handshakeTimeout: 0 }),
      ['handshakeTimeout'],
      'handshakeTimeout 0',
    );
    typeError(
      () => createSslServerContext({ certFile: server.certFile, keyFile: server.keyFile, requestCert: true }),
      ['caFile'],
      'requestCert without caFile',
    );
    typeError(
      () => createSslClientContext({ requestCert: true } as never),
      ['requestCert'],
      'an unknown option of createSslClientContext',
    );
    typeError(() => createSslClientContext({ caFile: missing }), [missing], 'a missing caFile');
    typeError(
      () => createSslClientContext({ certFile: server.certFile }),
      ['keyFile'],
      'certFile without keyFile',
    );
    const client = createSslClientContext({ caFile: ca.certFile });
    typeError(
      () =>
        t.api.startUpServer({
          service: 0,
          address: '127.0.0.1',
          sslCtx: client as never,
          function: (h: Connection) => h.destroy(),
        } as AnyServerOptions),
      ['sslCtx'],
      'startUpServer with a client context',
    );
    const port = (await freeListener(t)).port;
    typeError(
      () => t.api.openTcpStream('127.0.0.1', port, { tlsextHostName: 'localhost' }),
      ['tlsextHostName'],
      'tlsextHostName without sslCtx',
    );
    typeError(
      () => t.api.openTcpStream('127.0.0.1', port, { sslCtx: serverContext(t) as never }),
      ['sslCtx'],
      'openTcpStream with a server context',
    );
  },
);

/** A node:net listener that closes what it accepts: a port that answers, for calls that must not get that far. */
async function freeListener(t: CaseContext): Promise<{ port: number }> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  t.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port };
}
