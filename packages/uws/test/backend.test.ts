// The seam's promises (accept order, EADDRINUSE, half-close, partial writes, drain, a reset
// mid-write, destroy and close with a read or accept pending, accept errors at the descriptor
// limit) are checked by @comm/conformance's seam cases (`seam.*`, packages/conformance/src/seam),
// which test/conformance.test.ts runs on this backend, its peer speaking comm-stream over WebSocket.
// Here: what is particular to uWS (its options, the WebSocket framing and window, HTTP routes).
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  bindUws,
  type Connection,
  conformanceTransport,
  isNativeUws,
  type Listener,
  type ListenSpec,
  loadUws,
  protocol,
  type ServerProcess,
  type SocketStream,
} from '../src/internals.js';
import { expectWritesBoundedByStoppedReader } from './bounded.js';

const MiB = 1024 * 1024;
const uws = loadUws();
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const spec: ListenSpec = {
  host: '127.0.0.1',
  port: 0,
  family: 4,
  ipv6Only: false,
  backlog: 5,
  reusePort: false,
};

/** A backend on the test's uWS build, with `options`; listeners it opens are closed after the test. */
function backendWith(options: Parameters<typeof bindUws>[0] = {}) {
  const api = bindUws({ uws, ...options });
  return {
    api,
    async listen(overrides: Partial<ListenSpec> = {}): Promise<Listener> {
      const listener = await api.backend.listen({ ...spec, ...overrides });
      cleanups.push(() => listener.close());
      return listener;
    },
    async connect(port: number): Promise<Connection> {
      const connection = await api.backend.connect({ host: '127.0.0.1', port, family: 4 });
      cleanups.push(() => connection.destroy());
      return connection;
    },
  };
}

async function readAll(connection: Connection): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read())
    chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A plain `ws` client, no comm-stream code: what a third-party client sees. */
function plainClient(port: number, path = '/'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    cleanups.push(() => ws.terminate());
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('the uWS module', () => {
  it('is the native build, not the JavaScript fallback', () => {
    expect(isNativeUws(uws)).toBe(true);
    expect(uws.LIBUS_LISTEN_EXCLUSIVE_PORT).toBe(1);
  });
});

describe('options', () => {
  it('are checked when the backend is made, before uWS could abort the process on them', () => {
    expect(() => bindUws({ uws, idleTimeout: 4 })).toThrow(/idleTimeout must be 0 or 8-960/);
    expect(() => bindUws({ uws, idleTimeout: 961 })).toThrow(TypeError);
    expect(() => bindUws({ uws, maxPayloadLength: 1024 })).toThrow(/maxPayloadLength/);
    expect(() => bindUws({ uws, sendChunk: 0 })).toThrow(/sendChunk/);
    expect(bindUws({ uws, idleTimeout: 0 }).backend.name).toBe('uws');
  });
});

describe('uws backend seam', () => {
  it('the port is free after close(): uWS binds it again itself (a given port, SO_REUSEADDR)', async () => {
    const b = backendWith();
    const listener = await b.listen();
    await listener.close();
    const again = await b.listen({ port: listener.local.port });
    expect(again.local.port).toBe(listener.local.port);
  });

  it('splits writes larger than a message into messages of at most sendChunk bytes, byte-exact', async () => {
    const b = backendWith({ sendChunk: 16 * 1024, maxPayloadLength: 64 * 1024 });
    const listener = await b.listen();
    const client = await plainClient(listener.local.port);
    const server = (await listener.accept()) as Connection;
    const sizes: number[] = [];
    const received: Buffer[] = [];
    const done = new Promise<void>((resolve) =>
      client.on('message', (data: Buffer) => {
        if (data.length === 0) resolve();
        sizes.push(data.length);
        received.push(data);
      }),
    );
    const payload = randomBytes(MiB + 123);
    await server.write(payload);
    await server.end();
    await done;
    expect(Math.max(...sizes)).toBe(16 * 1024);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
  });

  it("a client's single large write arrives whole at a server with a small maxPayloadLength", async () => {
    const b = backendWith({ maxPayloadLength: 64 * 1024 });
    const listener = await b.listen();
    const client = await b.connect(listener.local.port);
    const server = (await listener.accept()) as Connection;
    const payload = randomBytes(3 * MiB);
    const reading = readAll(server);
    await client.write(payload);
    await client.end();
    expect((await reading).equals(payload)).toBe(true);
  });

  it('a write to a client that reads nothing waits: what uWS holds stays bounded', async () => {
    const b = backendWith({ highWater: 256 * 1024 });
    const listener = await b.listen();
    const client = await conformanceTransport(listener.local.port);
    cleanups.push(() => client.destroy());
    client.pause();
    const server = (await listener.accept()) as Connection;
    await expectWritesBoundedByStoppedReader(server, client);
  });

  it("a client's writes wait for the server's acknowledgements (comm-stream's window)", async () => {
    const b = backendWith();
    const listener = await b.listen();
    const client = await b.connect(listener.local.port);
    const server = (await listener.accept()) as Connection;
    let written = 0;
    const writing = (async () => {
      const chunk = new Uint8Array(256 * 1024);
      for (let i = 0; i < 16; i++) {
        await client.write(chunk);
        written += chunk.length;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The server reads nothing: the client stops at the window.
    expect(written).toBeLessThanOrEqual(protocol.WINDOW);
    let read = 0;
    while (read < 16 * 256 * 1024) read += ((await server.read()) as Uint8Array).length;
    await writing;
    expect(written).toBe(16 * 256 * 1024);
  });

  it('a client that ignores the window is closed (1008), so the server never buffers without bound', async () => {
    const b = backendWith();
    const listener = await b.listen();
    const client = await plainClient(listener.local.port);
    await listener.accept();
    const closed = new Promise<number>((resolve) => client.on('close', (code: number) => resolve(code)));
    const chunk = new Uint8Array(64 * 1024);
    for (let i = 0; i < 32 && client.readyState === WebSocket.OPEN; i++) client.send(chunk);
    expect(await closed).toBe(protocol.POLICY_VIOLATION);
  });

  it('text messages are data too, and an empty message is the end of input', async () => {
    const b = backendWith();
    const listener = await b.listen();
    const client = await plainClient(listener.local.port);
    const server = (await listener.accept()) as Connection;
    client.send('typed in a browser\n');
    client.send('');
    expect((await readAll(server)).toString()).toBe('typed in a browser\n');
  });

  it('with ipv6Only on ::, IPv4 clients are turned away at the upgrade; IPv6 clients are served', async () => {
    const b = backendWith();
    const listener = await b.listen({ host: '::', family: 6, ipv6Only: true });
    await expect(
      b.api.backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 }),
    ).rejects.toThrow(/403/);
    const v6 = await b.api.backend.connect({ host: '::1', port: listener.local.port, family: 6 });
    cleanups.push(() => v6.destroy());
    const server = (await listener.accept()) as Connection;
    expect(server.remote).toEqual({ address: '::1', port: v6.local.port, family: 6 });
  });

  it('serves HTTP routes beside the WebSocket endpoint, and tells other requests to upgrade', async () => {
    const b = backendWith({
      routes: (app) =>
        app.get('/hello', (res) => {
          res.end('hello over HTTP');
        }),
    });
    const listener = await b.listen();
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: listener.local.port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (t: string) => (body += t));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    expect(await get('/hello')).toEqual({ status: 200, body: 'hello over HTTP' });
    expect((await get('/other')).status).toBe(426);
  });
});

describe('through the contract on this backend', () => {
  it('10 MiB through one connection, both directions at once, arrives byte-exact', {
    timeout: 60_000,
  }, async () => {
    const api = bindUws({ uws });
    const size = 10 * MiB;
    const fromClient = randomBytes(size);
    const fromServer = randomBytes(size);
    let serverGot: Promise<Buffer> | null = null;
    const [server, condition] = await api.startUpServer({
      service: 0,
      address: '127.0.0.1',
      createStream: true,
      wait: true,
      function: (stream: SocketStream) => {
        serverGot = exchange(stream, fromServer);
      },
    });
    if (!server) throw condition;
    cleanups.push(() => api.serverTerminate(server as ServerProcess));
    const port = server.socket?.local.port as number;
    const stream = await api.openTcpStream('127.0.0.1', port, { errorp: true });
    if (!stream) throw new Error('no stream');
    const clientGot = await exchange(stream, fromClient);
    const got = await (serverGot as unknown as Promise<Buffer>);
    expect(clientGot.length).toBe(size);
    expect(got.length).toBe(size);
    expect(sha256(clientGot)).toBe(sha256(fromServer));
    expect(sha256(got)).toBe(sha256(fromClient));
  });
});

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

describe("the peer's port, read from /proc/net/tcp", () => {
  const clientPort = (ws: WebSocket) =>
    (ws as unknown as { _socket: { localPort: number } })._socket.localPort;

  it.skipIf(process.platform !== 'linux')(
    'is exact for clients one at a time, and never wrong (a port or 0) in a burst from one address',
    async () => {
      const { listen } = backendWith();
      const listener = await listen();
      const port = listener.local.port;
      // One at a time, each kept open: every one is the only unclaimed socket from 127.0.0.1.
      for (let i = 0; i < 20; i++) {
        const ws = await plainClient(port);
        const connection = await listener.accept();
        cleanups.push(() => connection?.destroy());
        expect(connection?.remote.port).toBe(clientPort(ws));
      }
      // 300 at once: the kernel's table cannot tell most of them apart; whatever port is given is theirs.
      const burst = await Promise.all(Array.from({ length: 300 }, () => plainClient(port)));
      const ports = new Set(burst.map(clientPort));
      const given: number[] = [];
      for (let i = 0; i < burst.length; i++) {
        const connection = await listener.accept();
        cleanups.push(() => connection?.destroy());
        const remote = connection?.remote.port ?? 0;
        if (remote !== 0) given.push(remote);
      }
      for (const p of given) expect(ports.has(p)).toBe(true);
      expect(new Set(given).size).toBe(given.length);
    },
    30_000,
  );
});
