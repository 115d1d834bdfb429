// The seam's promises (accept order, EADDRINUSE, half-close, partial writes, drain, a reset
// mid-write, destroy and close with a read or accept pending, accept errors at the descriptor
// limit) are checked by @comm/conformance's seam cases (`seam.*`, packages/conformance/src/seam),
// which test/conformance.test.ts runs on this backend. Here: what is particular to Bun.
import { afterEach, describe, expect, it } from 'bun:test';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import process from 'node:process';
import { listenBacklog, socketOptions, within } from '@comm/conformance';
import type { Connection, Listener, ListenSpec } from '@comm/core/backend';
import { backend, serverTerminate, startUpServer } from '../src/index.js';
import { startEmfileServer } from './emfile.js';

/** A seam write as a promise: `undefined` means the kernel took every byte at once. */
const written = (write: Promise<void> | undefined): Promise<void> => write ?? Promise.resolve();

// Bun's own: its fixed listen backlog (resized through libc), uSockets' TCP_NODELAY, reusePort,
// a reset mid-write through the contract, and the descriptor limit.

const encoder = new TextEncoder();

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

function spec(over: Partial<ListenSpec> = {}): ListenSpec {
  return { host: '127.0.0.1', port: 0, family: 4, ipv6Only: false, backlog: 5, reusePort: false, ...over };
}

async function listening(over: Partial<ListenSpec> = {}): Promise<Listener> {
  const listener = await backend.listen(spec(over));
  cleanups.push(() => listener.close());
  return listener;
}

function track<T extends { destroy(): void }>(thing: T): T {
  cleanups.push(() => thing.destroy());
  return thing;
}

/**
 * An independent peer on `node:net` (no @comm code in between), half-open so that our FIN ends its
 * input only. Kept here rather than borrowed from the suite, so that these tests stand on their own.
 */
class Peer {
  readonly socket: net.Socket;
  readonly localPort: number;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #waiters: Array<() => void> = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.localPort = socket.localPort ?? 0;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake();
    });
    for (const event of ['end', 'close', 'error']) socket.on(event, () => this.#end());
  }

  #end(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #more(): Promise<void> {
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** Half-close: FIN, reading goes on. */
  end(): void {
    this.socket.end();
  }

  /** The next line without its newline; null at end of input. */
  async readLine(): Promise<string | null> {
    for (;;) {
      const at = this.#buffer.indexOf(0x0a);
      if (at >= 0) {
        const line = this.#buffer.subarray(0, at).toString('utf8');
        this.#buffer = this.#buffer.subarray(at + 1);
        return line;
      }
      if (this.#ended) return null;
      await this.#more();
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function peerConnect(port: number, host = '127.0.0.1'): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new Peer(socket));
    });
  });
}

async function client(port: number): Promise<Peer> {
  return track(await peerConnect(port));
}

async function accepted(listener: Listener): Promise<Connection> {
  const connection = await within(listener.accept(), 5000, 'accept');
  if (!connection) throw new Error('the listener was closed');
  return track(connection);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Everything `connection` reads until end of input. */
async function readAll(connection: Connection): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
    chunks.push(chunk);
    size += chunk.length;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/** `size` bytes whose every position is checkable, so that a lost, doubled or reordered byte shows. */
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

/** A python3 child that connects to `port`, reads `readFirst` bytes, then closes with SO_LINGER 0: a reset. */
function resettingPeer(port: number, readFirst: number): { child: ChildProcess; done: Promise<string> } {
  const script = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
got = 0
while got < int(sys.argv[2]):
    b = s.recv(65536)
    if not b:
        break
    got += len(b)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset after", got, flush=True)
`;
  const child = spawn('python3', ['-c', script, String(port), String(readFirst)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`python3 exited ${code}: ${err.trim()}`)),
    );
  });
  return { child, done };
}

describe('bun backend seam', () => {
  it('reusePort on a port held without it fails with EADDRINUSE; reusePort on both shares it', async () => {
    const listener = await listening();
    const port = listener.local.port;
    await expect(backend.listen(spec({ port, reusePort: true }))).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    const shared = await listening({ reusePort: true });
    const again = await listening({ port: shared.local.port, reusePort: true });
    expect(again.local.port).toBe(shared.local.port);
  }, 10_000);

  it('IPv6 with ipv6Only false accepts IPv4 clients as mapped addresses; true refuses them', async () => {
    const both = await listening({ host: '::', family: 6 });
    expect(both.local).toEqual({ address: '::', port: both.local.port, family: 6 });
    await client(both.local.port);
    const mapped = await accepted(both);
    expect(mapped.remote.address).toBe('::ffff:127.0.0.1');
    expect(mapped.remote.family).toBe(6);
    const only = await listening({ host: '::', family: 6, ipv6Only: true });
    await expect(peerConnect(only.local.port, '127.0.0.1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }, 10_000);

  it('the backlog asked for is the listen queue the kernel reports (Bun fixes it at 512)', async () => {
    for (const backlog of [1, 17, 511, 513]) {
      const listener = await listening({ backlog });
      expect(await listenBacklog(listener.local.port)).toBe(backlog);
    }
    const somaxconn = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8')).trim());
    const system = await listening({ backlog: null });
    expect(await listenBacklog(system.local.port)).toBe(somaxconn);
    expect(backend.deviations).toEqual([]);
  }, 15_000);

  it('setNoDelay and setKeepAlive change the kernel socket (uSockets sets TCP_NODELAY on accept)', async () => {
    const listener = await listening();
    const peer = await client(listener.local.port);
    const connection = await accepted(listener);
    const ref = { pid: process.pid, localPort: listener.local.port, remotePort: peer.localPort };
    expect(await socketOptions(ref)).toMatchObject({ nodelay: true, keepalive: false });
    connection.setNoDelay(false);
    connection.setKeepAlive(true);
    expect(await socketOptions(ref)).toMatchObject({ nodelay: false, keepalive: true });
    connection.setNoDelay(true);
    connection.setKeepAlive(false);
    expect(await socketOptions(ref)).toMatchObject({ nodelay: true, keepalive: false });
  }, 15_000);

  it('a peer that resets mid-write: the write rejects, the read gives null, the server keeps serving', async () => {
    const outcomes: Array<{ error: unknown; read: Uint8Array | null; after: unknown }> = [];
    let calls = 0;
    const [server, condition] = await startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      function: async (handle: Connection) => {
        calls += 1;
        if (calls > 1) {
          await handle.write(encoder.encode('served\n'));
          await handle.end();
          handle.destroy();
          return;
        }
        // One write far larger than the kernel's buffers: it is still waiting when the reset comes.
        const error = await written(handle.write(new Uint8Array(64 * 1024 * 1024).fill(0x62))).then(
          () => null,
          (e: unknown) => e,
        );
        const read = await handle.read();
        const after = await written(handle.write(encoder.encode('more'))).then(
          () => null,
          (e: unknown) => e,
        );
        handle.destroy();
        outcomes.push({ error, read, after });
      },
    });
    if (!server) throw condition;
    cleanups.push(() => serverTerminate(server));
    const port = server.socket?.local.port as number;
    const peer = resettingPeer(port, 64 * 1024);
    expect(await within(peer.done, 10_000, 'the reset')).toMatch(/^reset after/);
    await within(
      (async () => {
        while (outcomes.length === 0) await sleep(10);
      })(),
      10_000,
      'the end of the first call',
    );
    const [outcome] = outcomes;
    if (!outcome) throw new Error('no outcome');
    expect(outcome.error).toBeInstanceOf(Error);
    expect(['ECONNRESET', 'EPIPE']).toContain((outcome.error as { code?: string }).code);
    expect(outcome.read).toBeNull();
    expect(outcome.after).toBeInstanceOf(Error);
    expect(server.state).toBe('listening');
    const next = await client(port);
    expect(await within(next.readLine(), 5000, 'the second client served')).toBe('served');
  }, 30_000);

  it('a connection waiting to be accepted reads nothing until asked, then everything in order', async () => {
    const listener = await listening();
    const peer = await client(listener.local.port);
    const data = pattern(2 * 1024 * 1024, 5);
    await peer.write(data);
    peer.end();
    await sleep(100);
    const connection = await accepted(listener);
    const all = await within(readAll(connection), 10_000, 'the data');
    expect(firstDifference(all, data)).toBe(-1);
  }, 15_000);

  it('connect: refused is ECONNREFUSED; localPort alone binds that port', async () => {
    const listener = await listening();
    const port = listener.local.port;
    await listener.close();
    await expect(backend.connect({ host: '127.0.0.1', port, family: 4 })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    const server = await listening();
    const probe = await listening();
    const localPort = probe.local.port;
    await probe.close();
    const connection = track(
      await backend.connect({ host: '127.0.0.1', port: server.local.port, family: 4, localPort }),
    );
    expect(connection.local.port).toBe(localPort);
    expect((await accepted(server)).remote.port).toBe(localPort);
  }, 10_000);
});

/** Connects and waits for the first line: `served`, or how the connection ended without one. */
function firstLine(port: number, timeoutMs: number): { socket: net.Socket; outcome: Promise<string> } {
  const socket = net.connect({ host: '127.0.0.1', port });
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
}

/** utime + stime of a process, in clock ticks (100 a second). */
async function cpuTicks(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

describe('bun backend at the descriptor limit (R14a)', () => {
  it('connections past the limit are reset, the loop does not spin, and clients are served again once descriptors are free', async () => {
    const NOFILE = 64;
    const { child, port, output } = await startEmfileServer(NOFILE, [], cleanups);

    // More clients than the child has descriptors: those past its reserve are reset, not queued for ever.
    const clients = Array.from({ length: 2 * NOFILE }, () => firstLine(port, 10_000));
    const outcomes = await Promise.all(clients.map((c) => c.outcome));
    const served = outcomes.filter((o) => o === 'served').length;
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(NOFILE);
    expect(outcomes.filter((o) => o === 'no reply')).toEqual([]);

    // At the limit, with clients still coming, the child is idle: Bun's loop is not retrying accept(2).
    const before = await cpuTicks(child.pid as number);
    const started = performance.now();
    while (performance.now() - started < 1000) {
      void firstLine(port, 2000).outcome;
      await sleep(100);
    }
    const ticks = (await cpuTicks(child.pid as number)) - before;
    expect(ticks).toBeLessThan(20);

    // Descriptors freed: a fresh client is served at once.
    for (const [k, client] of clients.entries()) if (outcomes[k] === 'served') client.socket.destroy();
    await sleep(200);
    expect(await firstLine(port, 5000).outcome).toBe('served');
    expect(output()).not.toContain('END ');
  }, 30_000);
});
