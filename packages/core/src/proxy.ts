import type { Connection, SocketAddress } from './backend.js';
import { type ProxyEndpoint, type ProxyVersion, parseProxyHeader } from './proxy-header.js';
import type { Prepare } from './stage.js';
import type { TrustedSources } from './trusted.js';

/**
 * R21: a connection must begin with a PROXY protocol header, sent from a trusted source, within
 * `timeoutMs`; then the addresses it names are the connection's. Anything else closes it.
 */
export function readProxyHeader(version: ProxyVersion, trusted: TrustedSources, timeoutMs: number): Prepare {
  return async (connection) => {
    // Refused before a byte is read: an untrusted peer's header would be a forged address.
    if (!trusted(connection.remote.address)) {
      connection.destroy();
      return null;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    let received: Uint8Array = new Uint8Array(0);
    try {
      for (;;) {
        const chunk = await Promise.race([connection.read(), timedOut]);
        if (chunk === null) break;
        received = received.length === 0 ? chunk : concat(received, chunk);
        const header = parseProxyHeader(received, version);
        if (header.state === 'incomplete') continue;
        if (header.state === 'invalid') break;
        return new ProxiedConnection(
          connection,
          header.source && header.destination ? endpoint(header.source) : connection.remote,
          header.source && header.destination ? endpoint(header.destination) : connection.local,
          received.subarray(header.length),
        );
      }
    } finally {
      clearTimeout(timer);
    }
    connection.destroy();
    return null;
  };
}

function endpoint(e: ProxyEndpoint): SocketAddress {
  return { address: e.address, port: e.port, family: e.family };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** The connection as the header names it: its addresses, and the client's bytes that came with the header. */
class ProxiedConnection implements Connection {
  readonly #connection: Connection;
  #early: Uint8Array | null;
  readonly remote: SocketAddress;
  readonly local: SocketAddress;
  readonly writeText?: (text: string) => Promise<void> | undefined;

  constructor(connection: Connection, remote: SocketAddress, local: SocketAddress, early: Uint8Array) {
    this.#connection = connection;
    this.remote = remote;
    this.local = local;
    this.#early = early.length > 0 ? early : null;
    if (connection.writeText) this.writeText = (text) => this.#connection.writeText?.(text);
  }

  read(): Promise<Uint8Array | null> {
    const early = this.#early;
    if (early === null) return this.#connection.read();
    this.#early = null;
    return Promise.resolve(early);
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#connection.write(chunk);
  }

  end(): Promise<void> {
    return this.#connection.end();
  }

  destroy(): void {
    this.#early = null;
    this.#connection.destroy();
  }

  setNoDelay(on: boolean): void {
    this.#connection.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#connection.setKeepAlive(on);
  }
}
