import * as net from 'node:net';
import type { Backend, Connection, ConnectSpec, Listener, ListenSpec, SocketAddress } from '@comm/core';
import { AcceptQueue, connectionClosed, ReadAhead } from '@comm/core';

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

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.local = addressOf(socket.localAddress, socket.localPort);
    this.remote = addressOf(socket.remoteAddress, socket.remotePort);
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
}

class NodeListener implements Listener {
  readonly local: SocketAddress;
  readonly #server: net.Server;
  // libuv accepts eagerly; the queue keeps connections in order until core asks for them (R2).
  readonly #accepted = new AcceptQueue();

  constructor(server: net.Server) {
    this.#server = server;
    const bound = server.address() as net.AddressInfo;
    this.local = addressOf(bound.address, bound.port);
    server.on('connection', (socket) => this.#accepted.push(new NodeConnection(socket)));
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

/** Connects with `node:net`, from the local address and port `spec` asks for. */
export function connectNet(spec: ConnectSpec): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      // The peer's FIN ends our input only; we close our side when the stream says so (half-close).
      allowHalfOpen: true,
      host: spec.host,
      port: spec.port,
      family: spec.family,
      ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
      ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
      ...(spec.signal ? { signal: spec.signal } : {}),
    });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(new NodeConnection(socket));
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
          resolve(new NodeListener(server));
        },
      );
    });
  },

  connect: connectNet,
};
