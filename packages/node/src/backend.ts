import { createRequire } from 'node:module';
import * as net from 'node:net';
import type * as Tls from 'node:tls';
import type {
  Backend,
  Connection,
  ConnectSpec,
  Listener,
  ListenSpec,
  SocketAddress,
  StartTls,
  TlsClientSpec,
  TlsInfo,
  TlsServerSpec,
} from '@comm/core/backend';
import { AcceptQueue, connectionClosed, ReadAhead } from '@comm/core/backend';

// node:tls costs a few milliseconds to load: loaded on first use, so that plain TCP never pays for it.
const requireBuiltin = createRequire(import.meta.url);
let tlsModule: typeof Tls | undefined;
function nodeTls(): typeof Tls {
  tlsModule ??= requireBuiltin('node:tls') as typeof Tls;
  return tlsModule;
}

// One secure context per server context (core keeps its spec for the context's life): built once for
// a listener and for every STARTTLS with the same context, never per connection.
const serverContexts = new WeakMap<TlsServerSpec, Tls.SecureContext>();
function serverContext(spec: TlsServerSpec): Tls.SecureContext {
  let context = serverContexts.get(spec);
  if (context === undefined) {
    context = nodeTls().createSecureContext({
      cert: spec.cert,
      key: spec.key,
      passphrase: spec.passphrase,
      ca: spec.ca,
    });
    serverContexts.set(spec, context);
  }
  return context;
}

// The family from the text, not from `socket.remoteFamily`, which not every node:net has (Deno's).
// A connection reset while it waited in the queue has no address: that is an empty one, never a throw.
function addressOf(address: string | undefined, port: number | undefined): SocketAddress {
  const text = address ?? '';
  return { address: text, port: port ?? 0, family: text.includes(':') ? 6 : 4 };
}

const NOTHING = new Uint8Array(0);

const CONNECTION = Symbol('comm connection');
type SocketWithConnection = net.Socket & { [CONNECTION]: NodeConnection };

// Set by NodeConnection's static block: what its socket's events do.
let received: (connection: NodeConnection, chunk: Uint8Array) => void;
let ended: (connection: NodeConnection) => void;
let drained: (connection: NodeConnection) => void;
let closed: (connection: NodeConnection) => void;
let failed: (connection: NodeConnection, error: Error) => void;

function onSocketData(this: SocketWithConnection, chunk: Buffer): void {
  received(this[CONNECTION], new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
}
function onSocketEnd(this: SocketWithConnection): void {
  ended(this[CONNECTION]);
}
function onSocketDrain(this: SocketWithConnection): void {
  drained(this[CONNECTION]);
}
function onSocketClose(this: SocketWithConnection): void {
  closed(this[CONNECTION]);
}
function onSocketError(this: SocketWithConnection, error: Error): void {
  failed(this[CONNECTION], error);
}

interface PendingWrite {
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * A connected `net.Socket` adapted to pull reads and paced writes. Exported for other backends
 * whose runtime has a `node:net` to fall back on (Deno's, for what `Deno.connect` cannot do).
 */
export class NodeConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #socket: net.Socket;
  readonly #incoming: ReadAhead;
  #error: Error | null = null;
  /** The write the kernel has not taken all of yet (core writes again only once it settled). */
  #writing: PendingWrite | null = null;
  /** A TLS socket: Node completes every write of it on a later turn, never at once. */
  readonly #encrypted: boolean;

  /** `tcp`: the kernel's socket under `socket` (a TLS socket wraps it), whose addresses these are. */
  constructor(socket: net.Socket, tcp: net.Socket = socket) {
    this.#socket = socket;
    this.#encrypted = tcp !== socket || (socket as { encrypted?: boolean }).encrypted === true;
    this.local = addressOf(tcp.localAddress, tcp.localPort);
    this.remote = addressOf(tcp.remoteAddress, tcp.remotePort);
    socket.pause();
    this.#incoming = new ReadAhead(socket);
    // One set of handlers for every socket, finding the connection on it: an idle connection costs
    // no closures of its own.
    (socket as SocketWithConnection)[CONNECTION] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('drain', onSocketDrain);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
  }

  static {
    received = (connection, chunk) => connection.#incoming.push(chunk);
    ended = (connection) => connection.#incoming.end();
    drained = (connection) => connection.#settleWrite(null);
    closed = (connection) => {
      connection.#incoming.end();
      // An error (and its stack) only for a write that waits: most connections close with none.
      if (connection.#writing)
        connection.#settleWrite(
          connection.#error ?? connectionClosed('the connection closed before the write completed'),
        );
    };
    failed = (connection, error) => {
      // A reset or a failed write ends input; the pending write reports the error.
      connection.#error = error;
      connection.#incoming.end();
    };
  }

  #settleWrite(error: Error | null | undefined): void {
    const waiter = this.#writing;
    this.#writing = null;
    if (!waiter) return;
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  read(): Promise<Uint8Array | null> {
    return this.#incoming.read();
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#send(chunk);
  }

  writeText(text: string): Promise<void> | undefined {
    return this.#send(text);
  }

  #send(data: Uint8Array | string): Promise<void> | undefined {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return Promise.reject(this.#error ?? connectionClosed());
    // TLS (Node's TLSWrap) reports every write done on a later turn, once its records went to the
    // kernel: its own callback says when, with no empty write after it.
    if (this.#encrypted)
      return new Promise((resolve, reject) => {
        this.#writing = { resolve, reject };
        socket.write(data, (error) => this.#settleWrite(error));
      });
    // libuv writes at once what the kernel takes: then nothing is left to wait for.
    const belowHighWater = socket.write(data);
    if (socket.writableLength === 0) return undefined;
    return new Promise((resolve, reject) => {
      this.#writing = { resolve, reject };
      // Past the high-water mark Node says 'drain' once its buffer is empty; below it, an empty
      // write's callback comes once every byte before it has gone.
      if (belowHighWater) socket.write(NOTHING, (error) => this.#settleWrite(error));
    });
  }

  end(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => socket.end(resolve));
  }

  destroy(): void {
    this.#socket.destroy();
    this.#incoming.destroy();
  }

  setNoDelay(on: boolean): void {
    this.#socket.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#socket.setKeepAlive(on);
  }

  /**
   * STARTTLS: a TLS socket over this one's TCP socket (`new tls.TLSSocket` as the server,
   * `tls.connect({ socket })` as the client). This connection stops reading: from now on the TLS
   * socket reads the kernel's socket. Bytes that arrived before (a client that sent its hello
   * without waiting for the protocol's go-ahead, or a command pipelined after STARTTLS) are never
   * taken as TLS: the upgrade fails.
   */
  startTls(upgrade: StartTls): Connection {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded || this.#incoming.ended) throw connectionClosed('startTls');
    if (socket.readableLength > 0) throw readAhead(socket.readableLength);
    socket.off('data', onSocketData);
    socket.off('end', onSocketEnd);
    socket.off('drain', onSocketDrain);
    socket.off('close', onSocketClose);
    socket.off('error', onSocketError);
    // The TLS socket reports the errors of the TCP socket under it.
    socket.on('error', ignore);
    socket.pause();
    // Input ends here for this connection; what it had read ahead and nobody read, comes out below.
    this.#incoming.end();
    const secure =
      upgrade.side === 'server'
        ? new (nodeTls().TLSSocket)(socket, {
            isServer: true,
            secureContext: serverContext(upgrade.spec),
            requestCert: upgrade.spec.requestCert,
            rejectUnauthorized: upgrade.spec.requestCert,
          })
        : nodeTls().connect({
            socket,
            // Verified when no servername is given: the peer's address, against the certificate's IP names.
            host: this.remote.address,
            ...clientOptions(upgrade.spec),
          });
    const connection = new NodeTlsConnection(
      secure,
      socket,
      upgrade.side,
      upgrade.side === 'server' ? upgrade.spec.requestCert : false,
      upgrade.side === 'client' ? upgrade.spec.servername : undefined,
    );
    // After end(), read() gives a chunk still queued, else null, without resuming the socket. A
    // chunk fails the upgrade before the TLS socket read anything: it reads the kernel's socket
    // from the next poll of the event loop on, and this settles before.
    // (Synchronous, with a count of the bytes ReadAhead holds, it could throw instead.)
    void this.#incoming.read().then((chunk) => {
      if (chunk !== null) secure.destroy(readAhead(chunk.length));
    });
    return connection;
  }
}

function ignore(): void {}

function closedEarly(what: string): Error {
  return Object.assign(new Error(`${what} before the TLS handshake finished`), { code: 'ECONNRESET' });
}

function readAhead(bytes: number): Error {
  return Object.assign(
    new Error(
      `startTls: ${bytes} bytes arrived before TLS started, and TLS must start where the protocol says: the peer sent them without waiting`,
    ),
    { code: 'EPROTO' },
  );
}

/**
 * tls.connect's options for a client spec. The name is passed only when there is one: Node warns
 * against an IP as SNI (RFC 6066, DEP0123), and with none it verifies the host (an IP literal)
 * against the certificate's IP names.
 */
function clientOptions(spec: TlsClientSpec): Tls.ConnectionOptions {
  return {
    ca: spec.ca,
    rejectUnauthorized: spec.verify,
    ...(spec.servername !== undefined ? { servername: spec.servername } : {}),
    ...(spec.cert !== undefined ? { cert: spec.cert } : {}),
    ...(spec.key !== undefined ? { key: spec.key } : {}),
  };
}

/**
 * A bare server-side TLSSocket (not made by tls.Server) asks for the client's certificate and
 * refuses a client without one, but accepts one that does not verify: Node's own check is
 * tls.Server's. This is that check: the verification result OpenSSL kept.
 */
function clientCertificateError(socket: Tls.TLSSocket): Error | null {
  const handle = (socket as { _handle?: { verifyError?: () => unknown } })._handle;
  if (typeof handle?.verifyError === 'function') {
    // Node gives an Error or null; Deno's node:tls a code, '' when verified.
    const result = handle.verifyError();
    if (result instanceof Error) return result;
    if (typeof result !== 'string' || result === '') return null;
    return Object.assign(new Error(`the client's certificate was not verified: ${result}`), { code: result });
  }
  // A node:tls without it: trust only what it says was authorized.
  return socket.authorized
    ? null
    : Object.assign(new Error(`the client's certificate was not verified: ${socket.authorizationError}`), {
        code: String(socket.authorizationError ?? 'ERR_TLS_CERT_NOT_VERIFIED'),
      });
}

/** A connection over a TLS socket: its handshake, and what it agreed. */
class NodeTlsConnection extends NodeConnection {
  readonly #handshake: Promise<void>;
  #tls: TlsInfo | null = null;

  /**
   * `servername`: the client's (what it asked for); a server learns it from the handshake.
   * `requestCert`: a server that asked for a client certificate, which must verify.
   */
  constructor(
    socket: Tls.TLSSocket,
    tcp: net.Socket,
    side: 'server' | 'client',
    requestCert: boolean,
    servername: string | undefined,
  ) {
    super(socket, tcp);
    // A client is secure once Node has verified the server ('secureConnect'); a server once the
    // handshake is done ('secure'), and the client's certificate checked below.
    const secureEvent = side === 'client' ? 'secureConnect' : 'secure';
    this.#handshake = new Promise<void>((resolve, reject) => {
      const settle = (error: Error | null) => {
        socket.off(secureEvent, onSecure);
        socket.off('error', onError);
        socket.off('end', onEnd);
        socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onSecure = () => {
        const refused = requestCert ? clientCertificateError(socket) : null;
        if (refused) {
          socket.destroy();
          settle(refused);
          return;
        }
        this.#tls = {
          servername: (side === 'server' ? socket.servername : servername) || null,
          protocol: socket.getProtocol(),
        };
        settle(null);
      };
      const onError = (error: Error) => settle(error);
      const onEnd = () => settle(closedEarly('the peer closed the connection'));
      const onClose = () => settle(closedEarly('the connection closed'));
      socket.once(secureEvent, onSecure);
      socket.once('error', onError);
      // A client's 'end' before the handshake is an error already (Node's ECONNRESET); a server's is not.
      if (side === 'server') socket.once('end', onEnd);
      socket.once('close', onClose);
    });
    // Core awaits it, unless the connection was given up first (a connect past its deadline).
    this.#handshake.catch(ignore);
  }

  handshake(): Promise<void> {
    return this.#handshake;
  }

  get tls(): TlsInfo | null {
    return this.#tls;
  }

  override startTls(): Connection {
    throw Object.assign(new Error('startTls: the connection speaks TLS already'), { code: 'EISCONN' });
  }
}

class NodeListener implements Listener {
  readonly local: SocketAddress;
  readonly #server: net.Server;
  // libuv accepts eagerly; the queue keeps connections in order until core asks for them (R2).
  readonly #accepted = new AcceptQueue();

  constructor(server: net.Server, tls: TlsServerSpec | undefined) {
    this.#server = server;
    const bound = server.address() as net.AddressInfo;
    this.local = addressOf(bound.address, bound.port);
    if (tls === undefined)
      server.on('connection', (socket) => this.#accepted.push(new NodeConnection(socket)));
    else {
      // R22: each accepted socket is wrapped as it comes; its handshake runs while it waits in the
      // queue and after, and core awaits it (with its timeout) outside the accept loop.
      const secureContext = serverContext(tls);
      const { TLSSocket } = nodeTls();
      const { requestCert } = tls;
      server.on('connection', (socket: net.Socket) => {
        // The TLS socket reports the errors of the TCP socket under it (as tls.Server's do).
        socket.on('error', ignore);
        const secure = new TLSSocket(socket, {
          isServer: true,
          secureContext,
          requestCert,
          rejectUnauthorized: requestCert,
        });
        this.#accepted.push(new NodeTlsConnection(secure, socket, 'server', requestCert, undefined));
      });
    }
    server.on('error', (error) => this.#accepted.fail(error));
  }

  accept(): Promise<Connection | null> {
    return this.#accepted.accept();
  }

  close(): Promise<void> {
    this.#accepted.close();
    // Node's 'close' event waits for every connection ever accepted to end; the port is free as soon as
    // close() returns, and connections handed on must not hold up `terminated` (R15).
    if (this.#server.listening) this.#server.close();
    return Promise.resolve();
  }
}

/**
 * Connects with `node:net`, from the local address and port `spec` asks for; with `spec.tls`,
 * with `tls.connect`, resolving once TCP is connected (the handshake is the connection's `handshake()`).
 */
export function connectNet(spec: ConnectSpec): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const options: net.TcpNetConnectOpts = {
      // The peer's FIN ends our input only; we close our side when the stream says so (half-close).
      allowHalfOpen: true,
      host: spec.host,
      port: spec.port,
      family: spec.family,
      ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
      ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
      ...(spec.signal ? { signal: spec.signal } : {}),
    };
    const tls = spec.tls;
    const socket =
      tls === undefined ? net.connect(options) : nodeTls().connect({ ...options, ...clientOptions(tls) });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(
        tls === undefined
          ? new NodeConnection(socket)
          : new NodeTlsConnection(socket as Tls.TLSSocket, socket, 'client', false, tls.servername),
      );
    });
  });
}

/** `reusePort` came with Node 23.1 and 22.12 (nodejs/node#55408); older lines ignore it without a word. */
function reusePortMissing(): string | null {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)) return null;
  return `reuseport needs Node 22.12+, 23.1+ or 24+ (SO_REUSEPORT through net's reusePort); this is Node ${process.versions.node}`;
}

/** `@comm/core`'s backend on `node:net`. */
export const nodeBackend: Backend = {
  name: 'node',

  get deviations() {
    const missing = reusePortMissing();
    return missing === null
      ? []
      : [
          {
            cases: ['R20.spreads-connections'],
            reason: `${missing}, so a server asking for it does not start (R20.unsupported-is-a-condition)`,
            upstream: 'https://github.com/nodejs/node/pull/55408',
          },
        ];
  },

  listen(spec: ListenSpec): Promise<Listener> {
    const missing = spec.reusePort ? reusePortMissing() : null;
    if (missing !== null) return Promise.reject(Object.assign(new Error(missing), { code: 'ENOTSUP' }));
    // A key that does not match its certificate, or a wrong passphrase, fails here: a startup condition.
    if (spec.tls !== undefined)
      try {
        serverContext(spec.tls);
      } catch (error) {
        return Promise.reject(error);
      }
    return new Promise((resolve, reject) => {
      // allowHalfOpen: a client's FIN ends its input only; the handler may still reply (half-close).
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
      const onError = (error: Error) => reject(error);
      server.once('error', onError);
      server.listen(
        {
          host: spec.host,
          port: spec.port,
          ipv6Only: spec.family === 6 && spec.ipv6Only,
          // Node's own default is 511; null asks for the system's: the kernel caps any backlog at somaxconn.
          backlog: spec.backlog ?? 0x7fffffff,
          exclusive: true,
          ...(spec.reusePort ? { reusePort: true } : {}),
        },
        () => {
          server.off('error', onError);
          resolve(new NodeListener(server, spec.tls));
        },
      );
    });
  },

  connect: connectNet,
};
