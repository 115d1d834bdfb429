/**
 * The seam between `@comm/core` and a runtime. A backend adapts one runtime's sockets to these
 * few pull-style calls; everything the contract promises above them (options, resolution, the
 * sequential accept loop, reopening after accept failures, streams, timeouts) lives in core.
 *
 * Runtimes that push connections or data at you (node:net, Bun, uWS) feed them through core's
 * `AcceptQueue` and `ReadAhead`, which give the pull semantics below with backpressure.
 */

/** An address as the runtime reports it: an IP literal (IPv6 without brackets) and a port. */
export interface SocketAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** Where to listen. Core has already resolved names, families and defaults. */
export interface ListenSpec {
  /** An IP literal: `0.0.0.0`, `::`, `127.0.0.1`, `::1`, `fe80::1%eth0`, `::ffff:127.0.0.1`. */
  readonly host: string;
  /** 0 asks the system for a free port. */
  readonly port: number;
  readonly family: 4 | 6;
  /** For family 6: true refuses IPv4 clients (IPV6_V6ONLY); false accepts them as mapped addresses. */
  readonly ipv6Only: boolean;
  /** The listen(2) queue length the kernel must report; null leaves the system default. */
  readonly backlog: number | null;
  /** false: binding a port another socket holds must fail with EADDRINUSE. true: SO_REUSEPORT. */
  readonly reusePort: boolean;
  /**
   * R22: every accepted connection speaks TLS as the server. `accept()` gives it as soon as TCP
   * is connected; core then awaits its `handshake()` outside the sequential accept loop.
   */
  readonly tls?: TlsServerSpec | undefined;
}

/** A server's TLS material, as PEM text (core has read the files). */
export interface TlsServerSpec {
  readonly cert: string;
  readonly key: string;
  readonly passphrase?: string | undefined;
  /** PEM of the authorities whose client certificates are accepted (with `requestCert`). */
  readonly ca?: string | undefined;
  /** Ask the client for a certificate, and refuse the handshake if it has none the `ca` signed. */
  readonly requestCert: boolean;
  /** The files the PEM text came from, for runtimes that take file names (uWS `SSLApp`). */
  readonly files: { readonly cert: string; readonly key: string; readonly ca?: string | undefined };
}

/** A client's TLS: whom to trust and which name to ask for (SNI) and verify. */
export interface TlsClientSpec {
  /** PEM of the authorities to trust; undefined: the runtime's (system) roots. */
  readonly ca?: string | undefined;
  /** false turns verification off (certificate chain and host name). true by default in core. */
  readonly verify: boolean;
  /** Sent as SNI and verified against the certificate; undefined when connecting to an IP literal without one. */
  readonly servername?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

/** What a TLS connection tells once its handshake is done. */
export interface TlsInfo {
  /** The host name the client asked for (SNI), or null if it sent none (or the runtime cannot tell). */
  readonly servername: string | null;
  /** `TLSv1.3`, `TLSv1.2`, or null if the runtime cannot tell. */
  readonly protocol: string | null;
}

/** A listening socket. */
export interface Listener {
  readonly local: SocketAddress;
  /**
   * The next connection, in the order the kernel completed them; `null` once `close()` was called.
   * A failure to accept rejects this one call with the error; the listener stays usable.
   * Core never calls it again before the previous call settled.
   */
  accept(): Promise<Connection | null>;
  /** Stops listening and frees the port; pending and later `accept()` calls give `null`. */
  close(): Promise<void>;
}

/** A connected socket: what the contract calls the socket handle. */
export interface Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  /**
   * The next bytes received, or `null` at end of input (the peer's FIN, a reset, or `destroy()`).
   * Core never calls it again before the previous call settled. While no call is pending the
   * backend should stop reading, so that a slow consumer slows the peer down.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Hands every byte of `chunk` to the runtime (the backend keeps what a partial write left over).
   * Returns `undefined` when the kernel took all of it at once; otherwise a promise that resolves
   * once it has, so that awaiting it paces the writer to the peer. Rejects if the connection
   * failed or was closed (`connectionClosed()` from core: code `EPIPE`). Core writes
   * again only after the previous write settled, and does not reuse `chunk` afterwards.
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
  /**
   * Optional: `write` for text, which the runtime encodes as UTF-8 straight into its own write
   * (one copy less than encoding it first). The same promise and the same rules as `write`.
   */
  writeText?(text: string): Promise<void> | undefined;
  /** Half-close: sends FIN after what was written; reading goes on. */
  end(): Promise<void>;
  /** Closes both directions at once; a pending `read()` gives `null`, a pending `write()` rejects. */
  destroy(): void;
  /** Sets or clears TCP_NODELAY on the kernel's socket. */
  setNoDelay(on: boolean): void;
  /** Sets or clears SO_KEEPALIVE on the kernel's socket. */
  setKeepAlive(on: boolean): void;
  /**
   * TLS only (R22): resolves once the handshake is done, rejects with the runtime's TLS error
   * (its `code` kept) if it fails. Core calls it once, with its own timeout, and destroys the
   * connection if it fails or takes too long. Absent on a plain connection.
   */
  handshake?(): Promise<void>;
  /** TLS only: what the handshake agreed, once `handshake()` resolved; null before. */
  readonly tls?: TlsInfo | null;
  /**
   * STARTTLS (R22 `attachSsl`): a TLS connection over this connected plain one, whose
   * `handshake()` core then awaits; core calls it only with no read or write pending. Where the
   * runtime cannot upgrade this side, it throws an Error with code `ENOTSUP` whose message says
   * why (and names the upstream issue); absent where it can upgrade neither.
   */
  startTls?(upgrade: StartTls): Connection;
}

export type StartTls =
  | { readonly side: 'server'; readonly spec: TlsServerSpec }
  | { readonly side: 'client'; readonly spec: TlsClientSpec };

/** Where to connect. */
export interface ConnectSpec {
  /** An IP literal; core has resolved names. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  /** R22: connect with TLS. `connect()` resolves once TCP is connected; core awaits `handshake()`. */
  readonly tls?: TlsClientSpec | undefined;
  /**
   * Aborted when the caller stops waiting (`openTcpStream`'s `timeout`): a runtime that can, gives
   * the attempt up then. Core closes a connection that completes after it anyway.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * A rule the backend cannot keep on its runtime, with why, and where upstream tracks it.
 * The conformance suite reports the named cases as deviations instead of running them.
 */
export interface Deviation {
  /** Conformance case ids (`R9.backlog-default`) or whole rules (`R9`). */
  readonly cases: readonly string[];
  readonly reason: string;
  readonly upstream: string;
}

export interface Backend {
  /** Short name shown in the conformance matrix: `node`, `bun`, `deno`, `uws`. */
  readonly name: string;
  /** Rejects with the runtime's error (its `code`, such as `EADDRINUSE`, kept) if binding fails. */
  listen(spec: ListenSpec): Promise<Listener>;
  /** Rejects with the runtime's error if the connection cannot be made. */
  connect(spec: ConnectSpec): Promise<Connection>;
  readonly deviations?: readonly Deviation[];
  /**
   * Set when the bytes a `Connection` reads are not the TCP stream's own (uWS carries them in
   * WebSocket messages, after an HTTP upgrade the runtime parses itself), so a PROXY protocol
   * header sent by a load balancer never reaches core: why, said to the user as a startup
   * condition when a server asks for `proxyProtocol` (R21).
   */
  readonly proxyProtocolUnsupported?: string;
}
