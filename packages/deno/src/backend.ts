import type {
  Backend,
  Connection,
  ConnectSpec,
  Deviation,
  Listener,
  ListenSpec,
  SocketAddress,
} from '@comm/core';
import { connectionClosed } from '@comm/core';
import { ffiUnavailable, listenRaw } from './ffi.js';
import { connectFrom } from './node-socket.js';

function addressOf(addr: Deno.NetAddr): SocketAddress {
  // Deno reports IPv6 without brackets (`::1`, `::ffff:127.0.0.1`).
  return { address: addr.hostname, port: addr.port, family: addr.hostname.includes(':') ? 6 : 4 };
}

/** The error names Deno gives an operation on a resource that was closed under it. */
function isClosedError(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'BadResource' || name === 'Interrupted';
}

/**
 * What `tcpBacklog` gets for `backlog: null`. Deno's own default is 511, not the system's; the
 * kernel caps any backlog at net.core.somaxconn, so the largest int asks for exactly that.
 */
const SYSTEM_BACKLOG = 0x7fffffff;

/**
 * Deno reads no more than the buffer it is given, and a pending read holds its buffer: an idle
 * connection should not hold 64 KiB. A read starts small and grows while reads fill it.
 */
const FIRST_READ = 2 * 1024;
const MAX_READ = 64 * 1024;

/** A `Deno.TcpConn` adapted to the seam: pull reads, complete and paced writes. */
class DenoConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #conn: Deno.TcpConn;
  #destroyed = false;
  #ended = false;
  #eof = false;
  #readSize = FIRST_READ;
  #buffer: Uint8Array | null = null;
  /** The write in flight (core writes one at a time), which `end()` waits for. */
  #writing: Promise<void> | null = null;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.local = addressOf(conn.localAddr);
    this.remote = addressOf(conn.remoteAddr);
  }

  async read(): Promise<Uint8Array | null> {
    // Deno reads only while a read is pending: with none, the kernel's buffer fills and the peer slows down.
    while (!this.#destroyed && !this.#eof) {
      // One buffer per connection, reused: what a read gives is copied out of it.
      if (this.#buffer === null || this.#buffer.length !== this.#readSize)
        this.#buffer = new Uint8Array(this.#readSize);
      const buffer = this.#buffer;
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch {
        // A reset, or destroy() while the read was pending: end of input either way.
        n = null;
      }
      if (n === null) {
        this.#eof = true;
        this.#buffer = null;
        break;
      }
      if (n === buffer.length) this.#readSize = Math.min(MAX_READ, this.#readSize * 2);
      else if (n < this.#readSize / 4) this.#readSize = Math.max(FIRST_READ, this.#readSize / 2);
      if (n > 0) return buffer.slice(0, n);
    }
    return null;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#destroyed || this.#ended) return Promise.reject(connectionClosed());
    const done = this.#writeAll(chunk);
    this.#writing = done.then(
      () => {},
      () => {},
    );
    return done;
  }

  /** `conn.write` may take only part of the bytes: write the rest until every byte is taken. */
  async #writeAll(chunk: Uint8Array): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#destroyed) throw connectionClosed('the connection was closed before the write completed');
      // Resolves once the kernel took the bytes: awaiting it paces the writer to the peer.
      const n = await this.#conn.write(at === 0 ? chunk : chunk.subarray(at));
      if (n <= 0) throw connectionClosed('the connection took no bytes');
      at += n;
    }
  }

  async end(): Promise<void> {
    if (this.#destroyed || this.#ended) return;
    this.#ended = true;
    await this.#writing;
    if (this.#destroyed) return;
    try {
      await this.#conn.closeWrite();
    } catch {
      // The peer is gone already (ENOTCONN): nothing is left to finish.
    }
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    try {
      // Cancels a pending read (it gives null) and a pending write (it rejects), and closes the socket.
      this.#conn.close();
    } catch (error) {
      if (!isClosedError(error)) throw error;
    }
  }

  setNoDelay(on: boolean): void {
    if (!this.#destroyed) this.#conn.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    if (!this.#destroyed) this.#conn.setKeepAlive(on);
  }
}

/** A `Deno.TcpListener`: already pull-based. */
class DenoListener implements Listener {
  readonly local: SocketAddress;
  readonly #listener: Deno.TcpListener;
  #closed = false;
  #pending: Promise<unknown> | null = null;

  constructor(listener: Deno.TcpListener) {
    this.#listener = listener;
    this.local = addressOf(listener.addr);
  }

  async accept(): Promise<Connection | null> {
    if (this.#closed) return null;
    const pending = this.#listener.accept();
    this.#pending = pending;
    let conn: Deno.TcpConn;
    try {
      conn = await pending;
    } catch (error) {
      // After close() the pending accept fails with BadResource; any other failure (EMFILE, ENFILE,
      // ENOBUFS...) is the caller's, with its code, and the listener stays usable (R14 in core).
      if (this.#closed) return null;
      throw error;
    } finally {
      this.#pending = null;
    }
    if (this.#closed) {
      conn.close();
      return null;
    }
    return new DenoConnection(conn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pending = this.#pending;
    try {
      this.#listener.close();
    } catch (error) {
      if (!isClosedError(error)) throw error;
    }
    // Deno frees the port only once a pending accept has failed: wait for that, so that the port
    // can be bound again as soon as close() resolves (R15, and R14's reopen on the same port).
    // A connection that still came is closed by accept(), which sees #closed.
    if (pending)
      await pending.then(
        () => {},
        () => {},
      );
  }
}

let signalsReady = false;

/**
 * Deno sets up its signal handling lazily, shortly after start (Deno 2.9), and panics if the process
 * has no descriptor left for it at that moment (ext/signals: `Signals::new(..).unwrap()`). A server
 * that runs out of descriptors must live on and reopen (R14), so set it up now, while there are some:
 * adding a listener does it once for the process, and removing it leaves the default behaviour.
 */
function prepareSignalHandling(): void {
  if (signalsReady) return;
  signalsReady = true;
  try {
    const ignore = () => {};
    Deno.addSignalListener('SIGINT', ignore);
    Deno.removeSignalListener('SIGINT', ignore);
  } catch {
    // No signals here (or not this one): nothing to prepare.
  }
}

function unstableNet(): boolean {
  return typeof Deno.listenDatagram === 'function';
}

function isUnspecifiedOrMapped(host: string): boolean {
  const bare = (host.split('%')[0] as string).toLowerCase();
  return bare === '::' || bare === '::0' || /^::ffff:/.test(bare) || /^(0+:){7}0+$/.test(bare);
}

/**
 * The sockets Deno.listen cannot make: an IPv6-only socket on `::` (Deno sets no IPV6_V6ONLY, and
 * Linux's default is dual-stack), or SO_REUSEPORT without `--unstable-net` (with which Deno would
 * end the process rather than throw). Made and accepted on with libc through FFI (`ffi.ts`).
 */
function listenWithFfi(spec: ListenSpec, why: string): Listener {
  const unavailable = ffiUnavailable();
  if (unavailable !== null)
    throw Object.assign(
      new Error(`Deno.listen cannot make ${why}, and the way around it needs FFI: ${unavailable}`),
      { code: 'EOPNOTSUPP' },
    );
  return listenRaw({
    host: spec.host,
    family: spec.family,
    port: spec.port,
    ipv6Only: spec.family === 6 && spec.ipv6Only,
    reusePort: spec.reusePort,
    backlog: spec.backlog ?? SYSTEM_BACKLOG,
  });
}

/** `@comm/core`'s backend on `Deno.listen` / `Deno.connect`. */
export const denoBackend: Backend = {
  name: 'deno',

  /**
   * None where FFI can be used (Linux, `--allow-ffi`). Elsewhere `ipv6: true` on `::` cannot be made
   * IPv6-only: it fails to start (EOPNOTSUPP, with the reason) rather than let IPv4 clients in.
   */
  get deviations(): readonly Deviation[] {
    const unavailable = ffiUnavailable();
    if (unavailable === null) return [];
    return [
      {
        cases: ['R7.ipv6-true-no-address', 'R8.true-ipv6-only'],
        reason: `Deno.listen has no IPV6_V6ONLY option (a socket on :: takes IPv4 clients too), and the FFI way around it cannot be taken here: ${unavailable}; so ipv6 true with no address fails to start (EOPNOTSUPP) rather than let IPv4 clients in`,
        upstream: 'https://github.com/denoland/deno/issues/34714',
      },
    ];
  },

  async listen(spec: ListenSpec): Promise<Listener> {
    prepareSignalHandling();
    // Without IPV6_V6ONLY, a socket on `::` or on a mapped address takes IPv4 clients too; on any
    // other IPv6 address there is no IPv4 client to refuse, and Deno.listen is already IPv6 only.
    if (spec.family === 6 && spec.ipv6Only && isUnspecifiedOrMapped(spec.host))
      return listenWithFfi(spec, 'an IPv6-only socket (IPV6_V6ONLY)');
    if (spec.reusePort && !unstableNet())
      return listenWithFfi(spec, 'an SO_REUSEPORT socket without --unstable-net');
    // The hostname is always given: Deno's default is 0.0.0.0, not "every address" as the contract means it.
    return new DenoListener(
      Deno.listen({
        transport: 'tcp',
        hostname: spec.host,
        port: spec.port,
        tcpBacklog: spec.backlog ?? SYSTEM_BACKLOG,
        ...(spec.reusePort ? { reusePort: true } : {}),
      }),
    );
  },

  async connect(spec: ConnectSpec): Promise<Connection> {
    if (spec.localAddress !== undefined || spec.localPort !== undefined) return connectFrom(spec);
    // The hostname is always given: Deno's default is 127.0.0.1.
    return new DenoConnection(
      await Deno.connect({
        transport: 'tcp',
        hostname: spec.host,
        port: spec.port,
        ...(spec.signal ? { signal: spec.signal } : {}),
      }),
    );
  },
};
