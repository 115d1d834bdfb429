/**
 * The few Deno APIs this package uses, declared so that plain `tsc` (with Node's types) builds it.
 * They follow Deno 2.9's own `lib.deno.d.ts`; nothing here exists at run time but in Deno.
 */
declare namespace Deno {
  interface NetAddr {
    readonly transport: 'tcp' | 'udp';
    readonly hostname: string;
    readonly port: number;
  }

  interface TcpConn {
    readonly localAddr: NetAddr;
    readonly remoteAddr: NetAddr;
    /** Resolves to the number of bytes read, or null at end of input. */
    read(p: Uint8Array): Promise<number | null>;
    /** Resolves to the number of bytes written: possibly fewer than `p.length`. */
    write(p: Uint8Array): Promise<number>;
    /** shutdown(2) of the write side. */
    closeWrite(): Promise<void>;
    close(): void;
    setNoDelay(noDelay?: boolean): void;
    setKeepAlive(keepAlive?: boolean): void;
  }

  interface TcpListener {
    readonly addr: NetAddr;
    accept(): Promise<TcpConn>;
    close(): void;
  }

  /**
   * A TLS connection: a `TcpConn` without `setNoDelay`/`setKeepAlive` (Deno's ops for them take
   * TCP resources only). Its handshake runs lazily, on the first read or write, or on `handshake()`.
   */
  interface TlsConn {
    readonly localAddr: NetAddr;
    readonly remoteAddr: NetAddr;
    read(p: Uint8Array): Promise<number | null>;
    write(p: Uint8Array): Promise<number>;
    /** Sends close_notify, then shutdown(2) of the write side. */
    closeWrite(): Promise<void>;
    close(): void;
    handshake(): Promise<{ alpnProtocol: string | null }>;
  }

  /** `accept()` resolves once TCP is connected: the handshake is the connection's own. */
  interface TlsListener {
    readonly addr: NetAddr;
    accept(): Promise<TlsConn>;
    close(): void;
  }

  function listenTls(options: {
    transport?: 'tcp';
    hostname?: string;
    port?: number;
    tcpBacklog?: number;
    /** Needs `--unstable-net`, as `Deno.listen`'s does. */
    reusePort?: boolean;
    /** PEM: the certificate, its chain after it. */
    cert: string;
    /** PEM, unencrypted. */
    key: string;
  }): TlsListener;

  /**
   * Consumes `conn` (a pending read on it makes this fail) and starts a client-side TLS session on
   * it: `hostname` is sent as SNI (unless it is an IP address) and verified against the certificate.
   * `caCerts` are trusted in addition to the default roots. No client certificate (denoland/deno#21496).
   */
  function startTls(conn: TcpConn, options?: { hostname?: string; caCerts?: string[] }): Promise<TlsConn>;

  function listen(options: {
    transport?: 'tcp';
    hostname?: string;
    port?: number;
    tcpBacklog?: number;
    /** Needs `--unstable-net`: without it Deno ends the process (exit code 70) instead of throwing. */
    reusePort?: boolean;
  }): TcpListener;

  function connect(options: {
    transport?: 'tcp';
    hostname?: string;
    port: number;
    signal?: AbortSignal;
  }): Promise<TcpConn>;

  /** Present only when the unstable `net` APIs are enabled (`--unstable-net`). */
  const listenDatagram: ((...args: never[]) => unknown) | undefined;

  function addSignalListener(signal: 'SIGINT', handler: () => void): void;
  function removeSignalListener(signal: 'SIGINT', handler: () => void): void;

  const build: { readonly os: string; readonly arch: string };
  const pid: number;
  function execPath(): string;

  interface PermissionStatus {
    readonly state: 'granted' | 'denied' | 'prompt';
  }
  const permissions: { querySync(descriptor: { name: 'ffi' | 'net' | 'run' | 'read' }): PermissionStatus };

  interface ForeignFunction {
    readonly parameters: readonly ('i32' | 'u32' | 'usize' | 'buffer' | 'pointer')[];
    readonly result: 'i32' | 'u32' | 'pointer' | 'void';
    /** Runs the call on a blocking thread and returns a promise. */
    readonly nonblocking?: boolean;
  }
  /** The symbols are typed by the caller (see `ffi.ts`). */
  function dlopen(
    path: string,
    symbols: Record<string, ForeignFunction>,
  ): { symbols: unknown; close(): void };
  class UnsafePointerView {
    constructor(pointer: object);
    getInt32(offset?: number): number;
  }

  // ---- used by the tests only ----

  interface TestContext {
    readonly name: string;
  }
  interface TestDefinition {
    name: string;
    fn: (t: TestContext) => void | Promise<void>;
    ignore?: boolean;
    sanitizeOps?: boolean;
    sanitizeResources?: boolean;
    sanitizeExit?: boolean;
  }
  function test(definition: TestDefinition): void;

  interface CommandStatus {
    readonly success: boolean;
    readonly code: number;
    readonly signal: string | null;
  }
  interface ChildProcess {
    readonly pid: number;
    readonly stdout: ReadableStream<Uint8Array>;
    readonly stderr: ReadableStream<Uint8Array>;
    readonly status: Promise<CommandStatus>;
    kill(signal?: string): void;
  }
  class Command {
    constructor(
      command: string,
      options?: {
        args?: string[];
        stdin?: 'piped' | 'inherit' | 'null';
        stdout?: 'piped' | 'inherit' | 'null';
        stderr?: 'piped' | 'inherit' | 'null';
        env?: Record<string, string>;
      },
    );
    spawn(): ChildProcess;
  }
  function readTextFile(path: string | URL): Promise<string>;
  function makeTempDir(options?: { prefix?: string }): Promise<string>;
  function remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  function writeTextFile(path: string, data: string): Promise<void>;
}
