import type {
  Backend,
  Connection,
  ConnectSpec,
  Deviation,
  Listener,
  ListenSpec,
  SocketAddress,
  StartTls,
  TlsClientSpec,
  TlsInfo,
  TlsServerSpec,
} from '@comm/core/backend';
import { connectionClosed } from '@comm/core/backend';
import { ffiUnavailable, listenerDescriptor, listenRaw, shutdownListener } from './ffi.js';
import { connectFrom } from './node-socket.js';
import { connectNodeTls, plainKey, serverTlsFromFd, serverTlsOptions } from './node-tls.js';

function addressOf(addr: Deno.NetAddr): SocketAddress {
  // Deno reports IPv6 without brackets (`::1`, `::ffff:127.0.0.1`).
  return { address: addr.hostname, port: addr.port, family: addr.hostname.includes(':') ? 6 : 4 };
}

/** An Error with code ENOTSUP: what this runtime cannot do, and where upstream tracks it. */
function notSupported(message: string): Error {
  return Object.assign(new Error(message), { code: 'ENOTSUP' });
}

const UPSTREAM = {
  sni: 'https://github.com/denoland/deno/issues/9109',
  clientAuth: 'https://github.com/denoland/deno/issues/26825',
  startTlsServer: 'https://github.com/denoland/deno/issues/18451',
  startTlsClientCert: 'https://github.com/denoland/deno/issues/21496',
  tlsNoDelay: 'https://github.com/denoland/deno/issues/13617',
  verifyOff: 'https://github.com/denoland/deno/issues/14972',
  /**
   * rustls-tokio-stream (Deno's TLS streams): a stream dropped while handshaking hands its socket to
   * a task that waits for the handshake to end, so closing a TlsConn whose peer stays silent does
   * not close the socket (no Deno issue yet).
   */
  closeWhileHandshaking:
    'https://github.com/denoland/rustls-tokio-stream/blob/c8a9239c987dbfa7b1eaed78d27935fe8272319c/src/stream.rs#L1146-L1179',
} as const;

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

/** Set by DenoConnection's static block: a TLS connection takes over its socket once TLS started. */
let adopt: (connection: DenoConnection, conn: Deno.TlsConn) => void;

/** A `Deno.TcpConn` adapted to the seam: pull reads, complete and paced writes. */
class DenoConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  /** A `TcpConn`; in a `DenoTlsConnection`, its `TlsConn` once TLS started. */
  #conn: Deno.TcpConn | Deno.TlsConn;
  #destroyed = false;
  #ended = false;
  #eof = false;
  #readSize = FIRST_READ;
  #buffer: Uint8Array | null = null;
  /** The write in flight (core writes one at a time), which `end()` waits for. */
  #writing: Promise<void> | null = null;
  /** What was set on the kernel's socket, which a STARTTLS connection keeps (see DenoTlsConnection). */
  #noDelay = false;
  #keepAlive = false;

  constructor(conn: Deno.TcpConn | Deno.TlsConn) {
    this.#conn = conn;
    this.local = addressOf(conn.localAddr);
    this.remote = addressOf(conn.remoteAddr);
  }

  static {
    adopt = (connection, conn) => {
      connection.#conn = conn;
    };
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
    if (this.#destroyed) return;
    (this.#conn as Deno.TcpConn).setNoDelay(on);
    this.#noDelay = on;
  }

  setKeepAlive(on: boolean): void {
    if (this.#destroyed) return;
    (this.#conn as Deno.TcpConn).setKeepAlive(on);
    this.#keepAlive = on;
  }

  /**
   * STARTTLS (R22 `attachSsl`) as the client with `Deno.startTls`, which verifies `servername`
   * (or the address) against the CA given. Deno has no server side for it (denoland/deno#18451).
   */
  startTls(upgrade: StartTls): Connection {
    if (upgrade.side === 'server')
      throw notSupported(
        `Deno cannot start TLS as the server on a connection from Deno.listen: Deno.startTls is client-only (${UPSTREAM.startTlsServer})`,
      );
    const spec = upgrade.spec;
    if (!spec.verify)
      throw notSupported(
        `Deno.startTls always verifies the server's certificate: Deno turns verification off only for the whole process (--unsafely-ignore-certificate-errors, ${UPSTREAM.verifyOff})`,
      );
    if (spec.cert !== undefined || spec.key !== undefined)
      throw notSupported(`Deno.startTls takes no client certificate (${UPSTREAM.startTlsClientCert})`);
    if (this.#destroyed || this.#ended) throw connectionClosed();
    return new DenoTlsConnection(this.#conn, {
      side: 'client',
      tcp: this.#conn as Deno.TcpConn,
      options: startTlsOptions(spec, this.remote.address),
      servername: spec.servername ?? null,
      noDelay: this.#noDelay,
      keepAlive: this.#keepAlive,
    });
  }
}

/** What `Deno.startTls` gets: the name to send and verify (the address when there is none), and the CA. */
function startTlsOptions(spec: TlsClientSpec, host: string): { hostname: string; caCerts?: string[] } {
  return {
    hostname: spec.servername ?? (host.split('%')[0] as string),
    ...(spec.ca !== undefined ? { caCerts: [spec.ca] } : {}),
  };
}

type TlsSide =
  /** Accepted on a `Deno.listenTls` socket: TLS from the start (with Linux's defaults: no TCP_NODELAY, no SO_KEEPALIVE). */
  | { readonly side: 'server' }
  /**
   * A connected `TcpConn`, made TLS with `Deno.startTls` when the handshake starts: until then
   * `setNoDelay`/`setKeepAlive` (which core calls right after connecting) still reach its socket.
   */
  | {
      readonly side: 'client';
      readonly tcp: Deno.TcpConn;
      readonly options: { hostname: string; caCerts?: string[] };
      readonly servername: string | null;
      readonly noDelay: boolean;
      readonly keepAlive: boolean;
    };

/**
 * A `Deno.TlsConn` adapted to the seam: the same reads and writes, the handshake, and `end()`
 * sending close_notify (`closeWrite()`). Deno's `TlsConn` has no `setNoDelay`/`setKeepAlive`
 * (denoland/deno#13617): once TLS started, a call that would change either throws ENOTSUP.
 */
class DenoTlsConnection extends DenoConnection {
  readonly #side: 'server' | 'client';
  readonly #servername: string | null;
  /** Client: the `TcpConn` until `Deno.startTls` took it. */
  #tcp: Deno.TcpConn | null;
  readonly #options: { hostname: string; caCerts?: string[] } | null;
  #starting: Promise<void> | null = null;
  #secure: Deno.TlsConn | null;
  #closed = false;
  #tls: TlsInfo | null = null;
  #noDelay: boolean;
  #keepAlive: boolean;

  constructor(conn: Deno.TcpConn | Deno.TlsConn, side: TlsSide) {
    super(conn);
    this.#side = side.side;
    if (side.side === 'server') {
      this.#servername = null;
      this.#tcp = null;
      this.#options = null;
      this.#secure = conn as Deno.TlsConn;
      this.#noDelay = false;
      this.#keepAlive = false;
    } else {
      this.#servername = side.servername;
      this.#tcp = side.tcp;
      this.#options = side.options;
      this.#secure = null;
      this.#noDelay = side.noDelay;
      this.#keepAlive = side.keepAlive;
    }
  }

  get tls(): TlsInfo | null {
    return this.#tls;
  }

  /** Client: starts TLS on the `TcpConn` (once). A failure closes the connection. */
  #start(): Promise<void> {
    this.#starting ??= (async () => {
      const tcp = this.#tcp as Deno.TcpConn;
      let secure: Deno.TlsConn;
      try {
        secure = await Deno.startTls(tcp, this.#options ?? {});
      } catch (error) {
        this.destroy();
        throw error;
      }
      this.#tcp = null;
      this.#secure = secure;
      adopt(this, secure);
      if (this.#closed) secure.close();
    })();
    return this.#starting;
  }

  async handshake(): Promise<void> {
    if (this.#tcp !== null) await this.#start();
    // Deno tells the ALPN protocol only: neither the name the client asked for nor the version.
    await (this.#secure as Deno.TlsConn).handshake();
    this.#tls = { servername: this.#servername, protocol: null };
  }

  override async read(): Promise<Uint8Array | null> {
    if (this.#tcp !== null)
      try {
        await this.#start();
      } catch {
        return null;
      }
    return super.read();
  }

  override write(chunk: Uint8Array): Promise<void> {
    if (this.#tcp !== null) return this.#start().then(() => super.write(chunk));
    return super.write(chunk);
  }

  override async end(): Promise<void> {
    if (this.#tcp !== null)
      try {
        await this.#start();
      } catch {
        return;
      }
    return super.end();
  }

  override destroy(): void {
    this.#closed = true;
    super.destroy();
  }

  override setNoDelay(on: boolean): void {
    if (this.#closed) return;
    if (this.#tcp !== null) {
      super.setNoDelay(on);
      this.#noDelay = on;
    } else if (on !== this.#noDelay)
      throw notSupported(
        `Deno's TlsConn has no setNoDelay (${UPSTREAM.tlsNoDelay}): TCP_NODELAY stays ${this.#noDelay ? 'set' : 'clear'} on this TLS connection`,
      );
  }

  override setKeepAlive(on: boolean): void {
    if (this.#closed) return;
    if (this.#tcp !== null) {
      super.setKeepAlive(on);
      this.#keepAlive = on;
    } else if (on !== this.#keepAlive)
      throw notSupported(
        `Deno's TlsConn has no setKeepAlive (${UPSTREAM.tlsNoDelay}): SO_KEEPALIVE stays ${this.#keepAlive ? 'set' : 'clear'} on this TLS connection`,
      );
  }

  override startTls(): Connection {
    throw notSupported(`this connection speaks TLS already (${this.#side} side)`);
  }
}

const plainConnection = (conn: Deno.TcpConn | Deno.TlsConn): Connection =>
  new DenoConnection(conn as Deno.TcpConn);

/**
 * A `Deno.TcpListener`, or a `Deno.TlsListener`: already pull-based. A TLS listener's `accept()`
 * resolves once TCP is connected (Deno handshakes lazily), so a client that never says hello
 * holds up no one: core awaits each handshake apart from the accept loop.
 */
class DenoListener implements Listener {
  readonly local: SocketAddress;
  readonly #listener: Deno.TcpListener | Deno.TlsListener;
  readonly #wrap: (conn: Deno.TcpConn | Deno.TlsConn) => Connection;
  /** The listening socket's descriptor, found with FFI (null where it cannot be used): see close(). */
  readonly #descriptor: number | null;
  #closed = false;
  #pending: Promise<unknown> | null = null;

  constructor(
    listener: Deno.TcpListener | Deno.TlsListener,
    wrap: (conn: Deno.TcpConn | Deno.TlsConn) => Connection = plainConnection,
  ) {
    this.#listener = listener;
    this.#wrap = wrap;
    this.local = addressOf(listener.addr);
    this.#descriptor = listenerDescriptor(this.local);
  }

  async accept(): Promise<Connection | null> {
    if (this.#closed) return null;
    const pending: Promise<Deno.TcpConn | Deno.TlsConn> = this.#listener.accept();
    this.#pending = pending;
    let conn: Deno.TcpConn | Deno.TlsConn;
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
    return this.#wrap(conn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pending = this.#pending;
    // Deno frees the port only once a pending accept has been cancelled, on a later turn of the
    // event loop (denoland/deno#22885): shut down now, the port is free when close() returns (R15).
    if (this.#descriptor !== null) shutdownListener(this.#descriptor);
    try {
      this.#listener.close();
    } catch (error) {
      if (!isClosedError(error)) throw error;
    }
    // Then wait for the pending accept to fail: Deno has closed the socket once close() resolves,
    // so that without FFI the port can be bound again then (R14's reopen on the same port). A
    // connection that still came is closed by accept(), which sees #closed.
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
  return listenRaw(rawOptions(spec));
}

function rawOptions(spec: ListenSpec) {
  return {
    host: spec.host,
    family: spec.family,
    port: spec.port,
    ipv6Only: spec.family === 6 && spec.ipv6Only,
    reusePort: spec.reusePort,
    backlog: spec.backlog ?? SYSTEM_BACKLOG,
  };
}

/** What a plain listener needs that `Deno.listen` (and `Deno.listenTls`) cannot make, or null. */
function socketNeedingFfi(spec: ListenSpec): string | null {
  // Without IPV6_V6ONLY, a socket on `::` or on a mapped address takes IPv4 clients too; on any
  // other IPv6 address there is no IPv4 client to refuse, and Deno.listen is already IPv6 only.
  if (spec.family === 6 && spec.ipv6Only && isUnspecifiedOrMapped(spec.host))
    return 'an IPv6-only socket (IPV6_V6ONLY)';
  if (spec.reusePort && !unstableNet()) return 'an SO_REUSEPORT socket without --unstable-net';
  return null;
}

/**
 * R22. Where FFI can be used: Deno's `node:tls` on each connection accepted on a socket made with
 * FFI (`node-tls.ts`), which does everything the contract asks. Elsewhere `Deno.listenTls`, which
 * cannot tell the name the client asked for, cannot ask for client certificates (ENOTSUP), and
 * cannot close a connection whose handshake never started (see `deviations`).
 */
function listenTls(spec: ListenSpec, tls: TlsServerSpec): Listener {
  // A wrong passphrase or a key that is not one fails here, with the reason.
  const key = plainKey(tls);
  const unavailable = ffiUnavailable();
  if (unavailable === null) {
    const options = serverTlsOptions({ ...tls, key, passphrase: undefined });
    return listenRaw({ ...rawOptions(spec), wrap: (fd) => serverTlsFromFd(fd, options) });
  }
  if (tls.requestCert)
    throw notSupported(
      `Deno.listenTls cannot ask clients for a certificate (requestCert): it offers no client authentication (${UPSTREAM.clientAuth}), and the way around it (node:tls on a socket made with FFI) cannot be taken here: ${unavailable}`,
    );
  const socket = socketNeedingFfi(spec);
  if (socket !== null)
    throw Object.assign(
      new Error(`Deno.listenTls cannot make ${socket}, and the way around it needs FFI: ${unavailable}`),
      { code: 'EOPNOTSUPP' },
    );
  const listener = Deno.listenTls({
    transport: 'tcp',
    hostname: spec.host,
    port: spec.port,
    tcpBacklog: spec.backlog ?? SYSTEM_BACKLOG,
    ...(spec.reusePort ? { reusePort: true } : {}),
    cert: tls.cert,
    key,
  });
  return new DenoListener(listener, (conn) => new DenoTlsConnection(conn, SERVER_SIDE));
}

const SERVER_SIDE = { side: 'server' } as const;

/** `@comm/core`'s backend on `Deno.listen` / `Deno.connect`. */
export const denoBackend: Backend = {
  name: 'deno',

  /**
   * Where FFI can be used (Linux, `--allow-ffi`): only that Deno has no server side for STARTTLS.
   * Elsewhere also `ipv6: true` on `::` (cannot be made IPv6-only: it fails to start with
   * EOPNOTSUPP rather than let IPv4 clients in), and what `Deno.listenTls` cannot do.
   */
  get deviations(): readonly Deviation[] {
    const startTlsServer: Deviation = {
      cases: ['R22.starttls-server'],
      reason:
        'Deno.startTls is client-only: a connection accepted with Deno.listen cannot become the TLS server, so attachSsl as the server fails with ENOTSUP',
      upstream: UPSTREAM.startTlsServer,
    };
    const unavailable = ffiUnavailable();
    if (unavailable === null) return [startTlsServer];
    const why = `the FFI way around it (node:tls on a socket made with FFI) cannot be taken here: ${unavailable}`;
    return [
      {
        cases: ['R7.ipv6-true-no-address', 'R8.true-ipv6-only'],
        reason: `Deno.listen has no IPV6_V6ONLY option (a socket on :: takes IPv4 clients too), and the FFI way around it cannot be taken here: ${unavailable}; so ipv6 true with no address fails to start (EOPNOTSUPP) rather than let IPv4 clients in`,
        upstream: 'https://github.com/denoland/deno/issues/34714',
      },
      {
        cases: ['R15.port-free-at-once'],
        reason: `Deno frees a listener's port only once its pending accept() has been cancelled, on a later turn of the event loop (a few milliseconds after close()), and the way around it (shutdown(2) on the listener's descriptor, found with FFI) cannot be taken here: ${unavailable}; so the port is free once terminated settles, not as soon as serverTerminate returns`,
        upstream: 'https://github.com/denoland/deno/issues/22885',
      },
      {
        cases: ['R22.client-certificate'],
        reason: `Deno.listenTls offers no client authentication, and ${why}; so a server with requestCert fails to start (ENOTSUP) rather than let clients in unchecked`,
        upstream: UPSTREAM.clientAuth,
      },
      {
        cases: ['R22.sni-reaches-server'],
        reason: `Deno.listenTls does not tell the name the client asked for (a TlsConn's handshake() gives the ALPN protocol only), and ${why}; so socket.tls.servername is null on the server`,
        upstream: UPSTREAM.sni,
      },
      {
        cases: ['R22.server-handshake-timeout'],
        reason: `a Deno TlsConn closed before its handshake finished keeps its socket open until the client sends or closes (rustls-tokio-stream hands it to a task that waits for the handshake), and ${why}; so a silent client's handshake times out but its connection stays open`,
        upstream: UPSTREAM.closeWhileHandshaking,
      },
      startTlsServer,
    ];
  },

  async listen(spec: ListenSpec): Promise<Listener> {
    prepareSignalHandling();
    if (spec.tls !== undefined) return listenTls(spec, spec.tls);
    const socket = socketNeedingFfi(spec);
    if (socket !== null) return listenWithFfi(spec, socket);
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
    // R22 with Deno's node:tls: Deno.startTls cannot turn verification off or present a client
    // certificate, and a TlsConn closed during its handshake keeps its socket open until the
    // server gives up (a client handshake timeout would leave the connection behind).
    if (spec.tls !== undefined) return connectNodeTls(spec);
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
