import { fromSocketAddress, type Ipv6Address } from './address.js';
import type { Connection, Listener, SocketAddress, TlsInfo } from './backend.js';
import { closeSession } from './process.js';

const encoder = new TextEncoder();

/** Records the stream made on a handle (set by SocketHandle's static block). */
export let streamMadeOn: (handle: SocketHandle, stream: { [closeSession](): void }) => void;

/**
 * The socket handle `function` receives (and `openTcpStream`'s stream holds): the backend's
 * connection, and whether it was closed here, so that its addresses read `[null, null]` then.
 */
export class SocketHandle implements Connection {
  #connection: Connection;
  #closed = false;
  /** The stream made on this handle, if any: closing the session closes it, output flushed. */
  #stream: { [closeSession](): void } | null = null;

  static {
    streamMadeOn = (handle, stream) => {
      handle.#stream = stream;
    };
  }

  /** @internal R23: how the library closes a session it was handed. */
  [closeSession](): void {
    if (this.#stream !== null) this.#stream[closeSession]();
    else this.destroy();
  }

  constructor(connection: Connection) {
    this.#connection = connection;
  }

  get local(): SocketAddress {
    return this.#connection.local;
  }

  get remote(): SocketAddress {
    return this.#connection.remote;
  }

  /** With TLS (R22), what the handshake agreed (the name the client asked for, the protocol); else null. */
  get tls(): TlsInfo | null {
    return this.#connection.tls ?? null;
  }

  /** @internal STARTTLS: the TLS connection over this one takes its place. */
  upgrade(connection: Connection): void {
    this.#connection = connection;
  }

  /** @internal the connection under the handle, for STARTTLS. */
  get connection(): Connection {
    return this.#connection;
  }

  /** True once `destroy()` was called, directly or by closing a stream on it. */
  get closed(): boolean {
    return this.#closed;
  }

  read(): Promise<Uint8Array | null> {
    return this.#connection.read();
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#connection.write(chunk);
  }

  writeText(text: string): Promise<void> | undefined {
    const connection = this.#connection;
    return connection.writeText === undefined
      ? connection.write(encoder.encode(text))
      : connection.writeText(text);
  }

  end(): Promise<void> {
    return this.#connection.end();
  }

  destroy(): void {
    this.#closed = true;
    this.#connection.destroy();
  }

  setNoDelay(on: boolean): void {
    this.#connection.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#connection.setKeepAlive(on);
  }
}

/** A server's listening socket, as `announce` and `ServerProcess.socket` give it. */
export class ListeningSocket {
  #listener: Listener | null;
  readonly local: SocketAddress;

  constructor(listener: Listener) {
    this.#listener = listener;
    this.local = listener.local;
  }

  /** True until the server closed it. */
  get open(): boolean {
    return this.#listener !== null;
  }

  /** @internal the server's accept loop. */
  accept(): Promise<Connection | null> {
    return this.#listener ? this.#listener.accept() : Promise.resolve(null);
  }

  /** @internal the server's way to close it; users call `serverTerminate`. */
  async close(): Promise<void> {
    const listener = this.#listener;
    this.#listener = null;
    await listener?.close();
  }
}

export type IpAddress = number | Ipv6Address;
export type AddressAndPort = [IpAddress, number] | [null, null];

interface HasAddresses {
  readonly local?: SocketAddress;
  readonly remote?: SocketAddress;
}

/**
 * R18a: never a throw for a handle the server gave. A connection whose peer reset while it waited
 * in the kernel's queue has no address (the runtime reports an empty one): it is not connected.
 */
function pair(address: SocketAddress | undefined): AddressAndPort {
  if (!address || address.address === '') return [null, null];
  try {
    return [fromSocketAddress(address.address, address.family), address.port];
  } catch {
    return [null, null];
  }
}

/** `[address, port]` of the local end: an IPv4 integer or an `Ipv6Address`; `[null, null]` if not connected. */
export function getSocketAddress(
  socket: ListeningSocket | SocketHandle | HasAddresses | null,
): AddressAndPort {
  if (socket instanceof ListeningSocket && !socket.open) return [null, null];
  if (socket instanceof SocketHandle && socket.closed) return [null, null];
  return pair(socket?.local);
}

/** `[address, port]` of the peer; `[null, null]` for a listening socket or when not connected. */
export function getSocketPeerAddress(
  socket: ListeningSocket | SocketHandle | HasAddresses | null,
): AddressAndPort {
  if (!socket || socket instanceof ListeningSocket) return [null, null];
  if (socket instanceof SocketHandle && socket.closed) return [null, null];
  return pair(socket.remote);
}
