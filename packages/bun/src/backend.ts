import { Buffer } from 'node:buffer';
import type {
  Backend,
  Connection,
  Deviation,
  Listener,
  ListenSpec,
  SocketAddress,
  StartTls,
  TlsClientSpec,
  TlsInfo,
  TlsServerSpec,
} from '@comm/core/backend';
import {
  AcceptQueue,
  admitConnection,
  connectionClosed,
  ReadAhead,
  releaseConnection,
} from '@comm/core/backend';
import {
  connect,
  listen,
  type Socket,
  type SocketHandler,
  type TCPSocketListener,
  type TLSOptions,
} from 'bun';
import { libc, setListenBacklog } from './libc.js';

function addressOf(
  address: string | undefined,
  port: number | undefined,
  family: string | undefined,
): SocketAddress {
  return { address: address ?? '', port: port ?? 0, family: family === 'IPv6' ? 6 : 4 };
}

/** What listen(2) is given for a null backlog: the kernel caps it at its maximum, net.core.somaxconn. */
const SYSTEM_BACKLOG = 0x7fffffff;

/** The write waiting for the kernel to take the rest of its bytes (core writes one at a time). */
interface PendingWrite {
  rest: Uint8Array;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * A Bun `TCPSocket` adapted to pull reads and paced writes. Bun pushes data and writes only what the
 * kernel takes at once (`write()` returns that count): the rest is kept here and written on `drain`,
 * so no byte is ever dropped, and a write resolves only once the kernel has all of it (backpressure).
 */
class BunConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #socket: Socket<BunConnection>;
  readonly #incoming: ReadAhead;
  /** The socket is closed (by us or by the peer): nothing more can be written or read. */
  #closed = false;
  /** We sent FIN (shutdown(SHUT_WR)). */
  #shut = false;
  #error: Error | null = null;
  #write: PendingWrite | null = null;
  /** `end()` calls waiting for the pending write to reach the kernel. */
  #ending: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];

  /** Counted by `admitConnection` (a connection the server accepted), until it closes. */
  #admitted: boolean;
  /** The read-ahead wants the socket paused. */
  #paused: boolean;

  /** `hold`: pause the socket now (a TLS socket must go on reading until its handshake is done). */
  constructor(socket: Socket<BunConnection>, admitted = false, hold = true) {
    this.#socket = socket;
    this.#admitted = admitted;
    this.#paused = hold;
    socket.data = this;
    this.local = addressOf(socket.localAddress, socket.localPort, socket.localFamily);
    this.remote = addressOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    // uSockets gives accepted sockets a 120 s idle timeout; timeouts are the stream's business (R16).
    socket.timeout(0);
    // Nothing is read until someone asks: a connection waiting in the server's queue (R2) reads nothing.
    if (hold) socket.pause();
    this.#incoming = new ReadAhead(this);
  }

  /** @internal the read-ahead's source. */
  pause(): void {
    this.#paused = true;
    if (!this.#closed) this.#socket.pause();
  }

  /** @internal the read-ahead's source. */
  resume(): void {
    this.#paused = false;
    if (!this.#closed) this.#socket.resume();
  }

  // ---- Bun's events ----

  onData(bytes: Uint8Array): void {
    this.#incoming.push(bytes);
  }

  /** The peer's FIN: input ends, output goes on (allowHalfOpen). */
  onEnd(): void {
    this.#incoming.end();
  }

  onDrain(): void {
    const pending = this.#write;
    if (pending === null) return;
    try {
      if (!this.#writeRest(pending)) return;
    } catch (error) {
      this.#failWrites(error as Error);
      return;
    }
    this.#write = null;
    pending.resolve();
    if (this.#ending.length > 0) this.#shutdown();
  }

  onClose(error: Error | undefined): void {
    if (this.#admitted) {
      this.#admitted = false;
      releaseConnection();
    }
    if (error) this.#error ??= error;
    this.#closed = true;
    this.#incoming.end();
    // An error (and its stack) only for writes that wait: most connections close with none.
    if (this.#write || this.#ending.length > 0)
      this.#failWrites(this.#error ?? connectionClosed('the connection closed before the write completed'));
  }

  onError(error: Error): void {
    this.#error ??= error;
    this.destroy();
  }

  // ---- output ----

  /** Writes what the kernel takes of `pending`; true once it has all of it. Throws if the socket is closed. */
  #writeRest(pending: PendingWrite): boolean {
    const wrote = this.#closed ? -1 : this.#socket.write(pending.rest);
    if (wrote < 0) throw this.#error ?? connectionClosed();
    // The kernel's buffer is full: Bun calls `drain` when it has room again.
    pending.rest = pending.rest.subarray(wrote);
    return pending.rest.length === 0;
  }

  #failWrites(error: Error): void {
    const pending = this.#write;
    this.#write = null;
    pending?.reject(error);
    for (const end of this.#ending.splice(0)) end.reject(error);
  }

  #shutdown(): void {
    if (!this.#shut && !this.#closed) {
      this.#shut = true;
      this.#socket.shutdown();
    }
    for (const end of this.#ending.splice(0)) end.resolve();
  }

  read(): Promise<Uint8Array | null> {
    return this.#incoming.read();
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#closed || this.#shut) return Promise.reject(this.#error ?? connectionClosed());
    const pending: PendingWrite = { rest: chunk, resolve: () => {}, reject: () => {} };
    try {
      if (this.#writeRest(pending)) return undefined;
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
      this.#write = pending;
    });
  }

  writeText(text: string): Promise<void> | undefined {
    if (this.#closed || this.#shut) return Promise.reject(this.#error ?? connectionClosed());
    // Bun encodes the text into its write itself; only a partial write needs the bytes here.
    const wrote = this.#socket.write(text);
    if (wrote < 0) return Promise.reject(this.#error ?? connectionClosed());
    const size = Buffer.byteLength(text);
    if (wrote === size) return undefined;
    return this.write(new TextEncoder().encode(text).subarray(wrote));
  }

  end(): Promise<void> {
    if (this.#closed || this.#shut) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#ending.push({ resolve, reject });
      // FIN goes after every byte written so far: at once if the kernel has them all, else on `drain`.
      if (this.#write === null) this.#shutdown();
    });
  }

  destroy(): void {
    if (!this.#closed) {
      this.#closed = true;
      // close(2); the `close` handler may run inside this call, and finds the connection closed.
      this.#socket.close();
    }
    this.#incoming.destroy();
    this.#failWrites(
      this.#error ?? connectionClosed('the connection was destroyed before the write completed'),
    );
  }

  setNoDelay(on: boolean): void {
    // uSockets sets TCP_NODELAY on every socket it accepts or connects; Bun's own setNoDelay(false)
    // clears it in the kernel (unlike Bun's node:net, whose setNoDelay(false) does nothing).
    if (!this.#closed) this.#socket.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    if (!this.#closed) this.#socket.setKeepAlive(on);
  }

  /**
   * STARTTLS with Bun's `upgradeTLS`, as either side (`isServer`: Bun 1.4 adopts the descriptor into
   * a TLS socket of that role, oven-sh/bun#31155). This connection is spent afterwards: its socket is detached, and the
   * raw socket Bun returns, which still gets the ciphertext, is cut off from it.
   */
  startTls(upgrade: StartTls): Connection {
    if (this.#closed || this.#shut) throw this.#error ?? connectionClosed();
    const server = upgrade.side === 'server';
    const verdict = server ? serverVerdict(upgrade.spec.requestCert) : clientVerdict(upgrade.spec.verify);
    const servername = server ? undefined : (upgrade.spec.servername ?? null);
    const admitted = this.#admitted;
    let secure: BunTlsConnection | null = null;
    let pair: [Socket<BunConnection | undefined>, Socket<BunConnection>];
    try {
      // The socket may be paused (no read pending); the handshake must read. No event comes between.
      this.#socket.resume();
      pair = this.#socket.upgradeTLS<BunConnection>({
        isServer: server,
        tls: server ? serverTlsOptions(upgrade.spec) : clientTlsOptions(upgrade.spec),
        // Bun runs `open` before upgradeTLS returns.
        socket: handlers((socket) => {
          secure ??= new BunTlsConnection(socket, admitted, verdict, servername);
        }, true),
      });
    } catch (error) {
      if (this.#paused) this.#socket.pause();
      if (!server) throw error;
      // Earlier Bun refused to upgrade a socket its listener accepted.
      throw Object.assign(
        new Error(
          `Bun cannot start TLS as the server on an accepted socket (oven-sh/bun#25044): ${(error as Error).message}`,
        ),
        { code: 'ENOTSUP', cause: error },
      );
    }
    const [raw, tls] = pair;
    // The raw socket's events (ciphertext, its close) belong to the TLS socket now, not to us.
    raw.data = undefined;
    this.#closed = true;
    // The descriptor stays counted, by the TLS connection now.
    this.#admitted = false;
    secure ??= new BunTlsConnection(tls, admitted, verdict, servername);
    // Bytes that reached us after the last read are the peer's first TLS bytes (it did not wait for
    // the protocol's go-ahead): the TLS socket never gets them, so its handshake fails now rather
    // than at its timeout.
    const leftover = this.#incoming.read();
    this.#incoming.end();
    const upgraded = secure;
    void leftover.then((chunk) => {
      if (chunk !== null)
        upgraded.settleHandshake(
          Object.assign(
            new Error(
              `${chunk.length} bytes arrived on the plain connection after its last read and before TLS started: the peer did not wait for the go-ahead`,
            ),
            { code: 'EPROTO' },
          ),
        );
    });
    return upgraded;
  }
}

/** Decides a TLS handshake from Bun's `handshake` event: the error it fails with, or null. */
type Verdict = (socket: Socket<BunConnection>, success: boolean, error: Error | null) => Error | null;

const tlsFailed = (): Error => Object.assign(new Error('the TLS handshake failed'), { code: 'EPROTO' });

/**
 * A server's: Bun reports a client without a certificate as an authorization error on every server;
 * it is a failure only when the server asked for one (Bun has closed the connection then).
 */
function serverVerdict(requestCert: boolean): Verdict {
  return requestCert
    ? (_, success, error) => (success && error === null ? null : (error ?? tlsFailed()))
    : (_, success, error) => (success ? null : (error ?? tlsFailed()));
}

/**
 * A client's: verifying, any certificate problem fails it (Bun has closed the connection). Not
 * verifying, Bun still says `success: false` for a name that does not match, yet goes on: what
 * fails then is a handshake that agreed no cipher (the peer reset, or spoke no TLS).
 */
function clientVerdict(verify: boolean): Verdict {
  return verify
    ? (_, success, error) => (success && error === null ? null : (error ?? tlsFailed()))
    : (socket, success, error) => (success || socket.getCipher() !== null ? null : (error ?? tlsFailed()));
}

function serverTlsOptions(spec: TlsServerSpec): TLSOptions {
  return {
    cert: spec.cert,
    key: spec.key,
    ...(spec.passphrase !== undefined ? { passphrase: spec.passphrase } : {}),
    ...(spec.ca !== undefined ? { ca: spec.ca } : {}),
    requestCert: spec.requestCert,
    // With requestCert, Bun closes a connection whose client has no certificate the `ca` signed.
    rejectUnauthorized: spec.requestCert,
  };
}

function clientTlsOptions(spec: TlsClientSpec): TLSOptions {
  return {
    // Without `ca`, Bun trusts its bundled roots (Mozilla's, as Node's).
    ...(spec.ca !== undefined ? { ca: spec.ca } : {}),
    // Bun checks the chain and the name natively: `serverName`, else the address connected to,
    // against the certificate's IP addresses. Without `serverName` Bun would also send that address
    // as SNI, which RFC 6066 forbids; an empty one sends none and still verifies the address.
    rejectUnauthorized: spec.verify,
    serverName: spec.servername ?? '',
    ...(spec.cert !== undefined ? { cert: spec.cert } : {}),
    ...(spec.key !== undefined ? { key: spec.key } : {}),
  };
}

/**
 * A connection over Bun's TLS socket (R22). `open` comes once TCP is connected and `handshake` when
 * the TLS handshake ended, so the connection is handed on at `open` and `handshake()` settles at
 * the `handshake` event. The socket keeps reading until then (the handshake needs it), and pauses
 * afterwards if no read is pending; reads, writes and backpressure are the plain connection's.
 * `end()` is Bun's `shutdown()`, which sends close_notify and then FIN.
 */
class BunTlsConnection extends BunConnection {
  readonly #socket: Socket<BunConnection>;
  readonly #verdict: Verdict;
  /** The name a client asked for; undefined on a server, which reads the name its client sent. */
  readonly #servername: string | null | undefined;
  readonly #handshake: Promise<void>;
  #settle: ((error: Error | null) => void) | null;
  #info: TlsInfo | null = null;
  /** The read-ahead wants the socket paused (it does before the first read); applied after the handshake. */
  #held = true;

  constructor(
    socket: Socket<BunConnection>,
    admitted: boolean,
    verdict: Verdict,
    servername: string | null | undefined,
  ) {
    super(socket, admitted, false);
    this.#socket = socket;
    this.#verdict = verdict;
    this.#servername = servername;
    let settle: (error: Error | null) => void = () => {};
    this.#handshake = new Promise<void>((resolve, reject) => {
      settle = (error) => (error === null ? resolve() : reject(error));
    });
    this.#settle = settle;
    // A connection destroyed before anyone asked (in the accept queue, say) leaves no unhandled rejection.
    this.#handshake.catch(() => {});
  }

  handshake(): Promise<void> {
    return this.#handshake;
  }

  get tls(): TlsInfo | null {
    return this.#info;
  }

  override pause(): void {
    this.#held = true;
    if (this.#settle === null) super.pause();
  }

  override resume(): void {
    this.#held = false;
    if (this.#settle === null) super.resume();
  }

  onHandshake(success: boolean, authorizationError: Error | null): void {
    if (this.#settle === null) return;
    const error = this.#verdict(this.#socket, success, authorizationError);
    if (error === null) {
      this.#info = {
        servername:
          this.#servername === undefined ? (this.#socket.getServername() ?? null) : this.#servername,
        protocol: this.#socket.getTLSVersion() ?? null,
      };
    }
    this.settleHandshake(error);
  }

  /** Settles `handshake()` (null: it succeeded), once; from then on the socket reads only when asked. */
  settleHandshake(error: Error | null): void {
    const settle = this.#settle;
    if (settle === null) return;
    this.#settle = null;
    if (error === null && this.#held) super.pause();
    settle(error);
  }

  override onError(error: Error): void {
    this.settleHandshake(error);
    super.onError(error);
  }

  override onClose(error: Error | undefined): void {
    super.onClose(error);
    this.settleHandshake(
      error ??
        Object.assign(new Error('the connection closed during the TLS handshake'), { code: 'ECONNRESET' }),
    );
  }

  override destroy(): void {
    super.destroy();
    this.settleHandshake(
      Object.assign(new Error('the connection was destroyed during the TLS handshake'), {
        code: 'ECONNABORTED',
      }),
    );
  }

  override startTls(): Connection {
    throw Object.assign(new Error('the connection speaks TLS already'), { code: 'EISCONN' });
  }
}

/** Bun's events, routed to the connection each socket carries in `data`. */
function handlers(open: (socket: Socket<BunConnection>) => void, tls = false): SocketHandler<BunConnection> {
  const routes: SocketHandler<BunConnection> = {
    binaryType: 'uint8array',
    open,
    data: (socket, bytes) => socket.data?.onData(bytes),
    end: (socket) => socket.data?.onEnd(),
    drain: (socket) => socket.data?.onDrain(),
    close: (socket, error) => socket.data?.onClose(error),
    error: (socket, error) => socket.data?.onError(error),
  };
  // With a `handshake` handler, Bun runs `open` at once (TCP connected) instead of after the handshake.
  if (tls)
    routes.handshake = (socket, success, error) =>
      (socket.data as BunTlsConnection | undefined)?.onHandshake(success, error);
  return routes;
}

class BunListener implements Listener {
  readonly local: SocketAddress;
  readonly #server: TCPSocketListener;
  readonly #accepted: AcceptQueue;
  #open = true;

  constructor(server: TCPSocketListener, accepted: AcceptQueue) {
    this.#server = server;
    this.#accepted = accepted;
    const bound: { family?: 'IPv4' | 'IPv6'; address?: string; port?: number } = {};
    server.getsockname(bound);
    this.local = addressOf(bound.address ?? server.hostname, bound.port ?? server.port, bound.family);
  }

  accept(): Promise<Connection | null> {
    return this.#accepted.accept();
  }

  close(): Promise<void> {
    this.#accepted.close();
    if (this.#open) {
      this.#open = false;
      // false: connections already accepted stay open (R15); the listening socket is closed at once.
      this.#server.stop(false);
    }
    return Promise.resolve();
  }
}

const deviations: readonly Deviation[] = [];

/** Where libc is out of reach (no `bun:ffi`, Windows), Bun's fixed backlog of 512 stays, and R9 says so. */
const backlogDeviation: Deviation = {
  cases: ['R9'],
  reason:
    'Bun.listen has no backlog option and always passes 512 to listen(2); the backend resizes the queue with listen(2) through bun:ffi, which cannot load libc on this platform',
  upstream: 'https://github.com/oven-sh/bun/pull/33786',
};

/** `@comm/core`'s backend on `Bun.listen` / `Bun.connect`. */
export const bunBackend: Backend = {
  name: 'bun',

  get deviations(): readonly Deviation[] {
    return libc() === null ? [...deviations, backlogDeviation] : deviations;
  },

  listen(spec: ListenSpec): Promise<Listener> {
    // Bun accepts eagerly; the queue keeps connections in the kernel's order until core asks (R2).
    const accepted = new AcceptQueue();
    const tls = spec.tls;
    let open: (socket: Socket<BunConnection>) => void;
    if (tls === undefined) {
      open = (socket) => {
        if (admitConnection()) accepted.push(new BunConnection(socket, true));
        // Out of descriptors but for the reserve: a reset now, rather than Bun spinning on EMFILE.
        else socket.terminate();
      };
    } else {
      // TLS: handed on once TCP is connected; core awaits the handshake outside the accept loop, so
      // a client that never says hello holds up no other.
      const verdict = serverVerdict(tls.requestCert);
      open = (socket) => {
        if (admitConnection()) accepted.push(new BunTlsConnection(socket, true, verdict, undefined));
        else socket.terminate();
      };
    }
    let server: TCPSocketListener;
    try {
      server = listen<BunConnection>({
        hostname: spec.host,
        port: spec.port,
        // Without `exclusive`, uSockets may share the port; with `reusePort` it sets SO_REUSEPORT.
        exclusive: !spec.reusePort,
        reusePort: spec.reusePort,
        ipv6Only: spec.family === 6 && spec.ipv6Only,
        // A client's FIN ends its input only; the handler may still reply (half-close).
        allowHalfOpen: true,
        ...(tls !== undefined ? { tls: serverTlsOptions(tls) } : {}),
        socket: handlers(open, tls !== undefined),
      });
    } catch (error) {
      return Promise.reject(error);
    }
    try {
      // Bun always listens with a backlog of 512: set the one asked for on the listening socket itself.
      setListenBacklog(server.fd, spec.backlog ?? SYSTEM_BACKLOG);
    } catch (error) {
      server.stop(true);
      return Promise.reject(error);
    }
    return Promise.resolve(new BunListener(server, accepted));
  },

  async connect(spec): Promise<Connection> {
    let connection: BunConnection | null = null;
    const tls = spec.tls;
    const opened = (socket: Socket<BunConnection>): BunConnection =>
      tls === undefined
        ? new BunConnection(socket)
        : new BunTlsConnection(socket, false, clientVerdict(tls.verify), tls.servername ?? null);
    const socket = await connect<BunConnection>({
      hostname: spec.host,
      port: spec.port,
      // The peer's FIN ends our input only; we close our side when the stream says so (half-close).
      allowHalfOpen: true,
      // Bun ignores localPort without localAddress: bind the family's wildcard address then.
      ...(spec.localAddress !== undefined || spec.localPort !== undefined
        ? { localAddress: spec.localAddress ?? (spec.family === 6 ? '::' : '0.0.0.0') }
        : {}),
      ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
      // Resolves once TCP is connected; the handshake goes on, and `handshake()` tells its end.
      ...(tls !== undefined ? { tls: clientTlsOptions(tls) } : {}),
      socket: handlers((socket) => {
        connection = opened(socket);
      }, tls !== undefined),
    });
    return connection ?? opened(socket);
  },
};
