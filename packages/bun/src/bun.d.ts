/**
 * The few Bun APIs this backend uses, declared here so that a plain `tsc` builds it without
 * bun-types. Shapes follow Bun 1.4 (`packages/bun-types/bun.d.ts`, `src/bun.js/api/bun/socket.zig`).
 * Nothing in the emitted `.d.ts` refers to these names, so they are not part of the package's types.
 */

declare module 'bun' {
  type AddressFamily = 'IPv4' | 'IPv6';

  /** A connected TCP socket (`TCPSocket`); one JavaScript object per connection, passed to every handler. */
  interface Socket<Data = unknown> {
    data: Data;
    readonly fd: number;
    readonly localAddress: string | undefined;
    readonly localPort: number | undefined;
    readonly localFamily: AddressFamily | undefined;
    readonly remoteAddress: string | undefined;
    readonly remotePort: number | undefined;
    readonly remoteFamily: AddressFamily | undefined;
    /** Bytes the kernel took (possibly fewer than given, 0 when it took none), or -1 once closed or shut down; text is written as UTF-8. */
    write(data: Uint8Array | string): number;
    /** shutdown(2): SHUT_WR, or SHUT_RD with `true`. Unlike `end()`, never closes the socket. */
    shutdown(readSide?: boolean): void;
    /** close(2) at once; the `close` handler runs. */
    close(): void;
    /** Closes with SO_LINGER 0: the peer gets a reset. */
    terminate(): void;
    /** Stops (and restarts) reading from the kernel. */
    pause(): void;
    resume(): void;
    setNoDelay(enabled?: boolean): boolean;
    setKeepAlive(enabled?: boolean, initialDelay?: number): boolean;
    /** Idle timeout in seconds; 0 turns it off. */
    timeout(seconds: number): void;
    /** TLS: the SNI name the client sent (server side) or asked for (client side); undefined if none. */
    getServername(): string | undefined;
    /** TLS: `TLSv1.3`, `TLSv1.2`, ... (meaningful once the handshake is done). */
    getTLSVersion(): string | null;
    /** TLS: the cipher agreed, or null while no handshake has completed. */
    getCipher(): { name: string } | null;
    /**
     * STARTTLS: a TLS socket over this connected one, whose `open` handler runs before it returns.
     * Returns `[raw, tls]`: `raw` still gets this socket's handlers, with the ciphertext; this
     * socket itself is detached. `isServer` picks the role (Bun 1.4; earlier Bun refused the server
     * side, oven-sh/bun#25044).
     */
    upgradeTLS<TlsData>(options: {
      data?: TlsData;
      isServer?: boolean;
      tls: TLSOptions;
      socket: SocketHandler<TlsData>;
    }): [Socket<Data | undefined>, Socket<TlsData>];
  }

  /** Bun's TLS options (the subset this backend passes); PEM text throughout. */
  interface TLSOptions {
    cert?: string;
    key?: string;
    passphrase?: string;
    ca?: string;
    /** Server: ask the client for a certificate. */
    requestCert?: boolean;
    /** Client: verify the server's chain and name; server (with requestCert): refuse clients without a trusted certificate. */
    rejectUnauthorized?: boolean;
    /** Client: the SNI name, and the name verified; '' sends none and verifies the host connected to. */
    serverName?: string;
  }

  interface SocketHandler<Data = unknown> {
    binaryType?: 'uint8array' | 'buffer' | 'arraybuffer';
    open?(socket: Socket<Data>): void;
    data?(socket: Socket<Data>, data: Uint8Array): void;
    drain?(socket: Socket<Data>): void;
    end?(socket: Socket<Data>): void;
    close?(socket: Socket<Data>, error?: Error): void;
    error?(socket: Socket<Data>, error: Error): void;
    /**
     * TLS: the handshake ended. `open` runs before it, once TCP is connected. `authorizationError`
     * is the peer's certificate problem (set on a server without a client certificate too).
     */
    handshake?(socket: Socket<Data>, success: boolean, authorizationError: Error | null): void;
  }

  interface TCPSocketListener {
    readonly fd: number;
    readonly port: number;
    readonly hostname: string;
    /** Fills `out` with the bound address, as getsockname(2) reports it. */
    getsockname(out: { family?: AddressFamily; address?: string; port?: number }): void;
    /** Stops listening; with `true` it also closes every connection it accepted. */
    stop(closeActiveConnections?: boolean): void;
  }

  interface TCPSocketListenOptions<Data = unknown> {
    hostname: string;
    port: number;
    socket: SocketHandler<Data>;
    /** false (the default) lets uSockets reuse the port; true binds it exclusively. */
    exclusive?: boolean;
    reusePort?: boolean;
    ipv6Only?: boolean;
    allowHalfOpen?: boolean;
    tls?: TLSOptions;
  }

  interface TCPSocketConnectOptions<Data = unknown> {
    hostname: string;
    port: number;
    socket: SocketHandler<Data>;
    allowHalfOpen?: boolean;
    localAddress?: string;
    localPort?: number;
    tls?: TLSOptions;
  }

  /** Throws (with `code`, such as `EADDRINUSE`) when binding fails. */
  function listen<Data = unknown>(options: TCPSocketListenOptions<Data>): TCPSocketListener;
  function connect<Data = unknown>(options: TCPSocketConnectOptions<Data>): Promise<Socket<Data>>;
}

declare module 'bun:ffi' {
  type Pointer = number & { readonly __pointer__: unique symbol };

  const FFIType: {
    readonly i32: 'i32';
    readonly ptr: 'ptr';
  };
  type FFITypeName = (typeof FFIType)[keyof typeof FFIType];

  interface FFIFunction {
    readonly args: readonly FFITypeName[];
    readonly returns: FFITypeName;
  }

  interface Library<Fns extends Record<string, FFIFunction>> {
    readonly symbols: { [K in keyof Fns]: (...args: number[]) => number | Pointer | null };
    close(): void;
  }

  /** Throws if the library or one of the symbols cannot be found. */
  function dlopen<Fns extends Record<string, FFIFunction>>(path: string, symbols: Fns): Library<Fns>;

  const read: {
    i32(pointer: Pointer, byteOffset?: number): number;
  };
}
