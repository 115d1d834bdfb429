import { fromSocketAddress, type Ipv6Address } from './address.js';
import type { Connection, Listener, SocketAddress } from './backend.js';

/** The socket handle `function` receives: the backend's connection. */
export type SocketHandle = Connection;

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

function pair(address: SocketAddress | undefined): AddressAndPort {
  if (!address) return [null, null];
  return [fromSocketAddress(address.address, address.family), address.port];
}

/** `[address, port]` of the local end: an IPv4 integer or an `Ipv6Address`; `[null, null]` if not connected. */
export function getSocketAddress(
  socket: ListeningSocket | SocketHandle | HasAddresses | null,
): AddressAndPort {
  if (socket instanceof ListeningSocket && !socket.open) return [null, null];
  return pair(socket?.local);
}

/** `[address, port]` of the peer; `[null, null]` for a listening socket or when not connected. */
export function getSocketPeerAddress(
  socket: ListeningSocket | SocketHandle | HasAddresses | null,
): AddressAndPort {
  if (!socket || socket instanceof ListeningSocket) return [null, null];
  return pair(socket.remote);
}
