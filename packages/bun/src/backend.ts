import { Buffer } from 'node:buffer';
import type { Backend, Connection, Deviation, Listener, ListenSpec, SocketAddress } from '@comm/core';
import { AcceptQueue, admitConnection, connectionClosed, ReadAhead, releaseConnection } from '@comm/core';
import { connect, listen, type Socket, type SocketHandler, type TCPSocketListener } from 'bun';
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

  constructor(socket: Socket<BunConnection>, admitted = false) {
    this.#socket = socket;
    this.#admitted = admitted;
    socket.data = this;
    this.local = addressOf(socket.localAddress, socket.localPort, socket.localFamily);
    this.remote = addressOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
    // uSockets gives accepted sockets a 120 s idle timeout; timeouts are the stream's business (R16).
    socket.timeout(0);
    // Nothing is read until someone asks: a connection waiting in the server's queue (R2) reads nothing.
    socket.pause();
    this.#incoming = new ReadAhead(this);
  }

  /** @internal the read-ahead's source. */
  pause(): void {
    if (!this.#closed) this.#socket.pause();
  }

  /** @internal the read-ahead's source. */
  resume(): void {
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
}

/** Bun's events, routed to the connection each socket carries in `data`. */
function handlers(open: (socket: Socket<BunConnection>) => void): SocketHandler<BunConnection> {
  return {
    binaryType: 'uint8array',
    open,
    data: (socket, bytes) => socket.data?.onData(bytes),
    end: (socket) => socket.data?.onEnd(),
    drain: (socket) => socket.data?.onDrain(),
    close: (socket, error) => socket.data?.onClose(error),
    error: (socket, error) => socket.data?.onError(error),
  };
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
        socket: handlers((socket) => {
          if (admitConnection()) accepted.push(new BunConnection(socket, true));
          // Out of descriptors but for the reserve: a reset now, rather than Bun spinning on EMFILE.
          else socket.terminate();
        }),
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
      socket: handlers((opened) => {
        connection = new BunConnection(opened);
      }),
    });
    return connection ?? new BunConnection(socket);
  },
};
