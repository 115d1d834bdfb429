/**
 * Deno's own `node:tls`, for the TLS that `Deno.listenTls` / `Deno.startTls` cannot do (README, TLS):
 *
 * - servers (where FFI can be used, on sockets made with it, see `ffi.ts`): `Deno.listenTls`
 *   cannot tell the SNI name, ask for client certificates (denoland/deno#26825), set socket
 *   options on its connections, or close one whose handshake never ended;
 * - clients: `Deno.startTls` cannot turn verification off per connection (`node:tls` can,
 *   `rejectUnauthorized`, denoland/deno#29245), present a client certificate, or close a
 *   connection during its handshake.
 *
 * Each is a `tls.TLSSocket` over a connected `node:net` socket, adapted to the seam by
 * `@comm/node`'s `NodeConnection` (pull reads, paced writes), with the handshake on top.
 */
import { createPrivateKey } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Connection, ConnectSpec, SocketAddress, TlsInfo, TlsServerSpec } from '@comm/core/backend';
import { NodeConnection } from '@comm/node/backend';

function addressOf(address: string | undefined, port: number | undefined): SocketAddress {
  const text = address ?? '';
  return { address: text, port: port ?? 0, family: text.includes(':') ? 6 : 4 };
}

/**
 * The key as unencrypted PEM: `Deno.listenTls` takes no passphrase. A wrong passphrase fails
 * here, with the reason, rather than as "no keys found".
 */
export function plainKey(spec: TlsServerSpec): string {
  if (spec.passphrase === undefined) return spec.key;
  return String(
    createPrivateKey({ key: spec.key, passphrase: spec.passphrase }).export({ type: 'pkcs8', format: 'pem' }),
  );
}

/** Deno's `verifyError()` gives a code ('' when verified); Node's gives an Error or null. */
function verifyErrorOf(socket: tls.TLSSocket): Error | null {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => unknown } })._handle;
  const error = handle?.verifyError?.();
  if (error instanceof Error) return error;
  if (typeof error === 'string' && error !== '')
    return Object.assign(new Error(`the client's certificate is not trusted: ${error}`), { code: error });
  return null;
}

interface StreamHandle {
  readStart(): number;
  readStop(): number;
}

/**
 * Deno's TLSWrap stops delivering cleartext on `readStop()` but goes on reading the TCP socket,
 * buffering what comes without bound (ext/node/ops/tls_wrap.rs, "Known limitation"): a peer that
 * sends while no read is pending would fill the process instead of the kernel's buffers. Make
 * `readStop()` / `readStart()` stop and start the TCP reads too, as Node's TLSWrap does, so that
 * backpressure reaches the peer (R16a). Without the internals this relies on, nothing changes.
 */
function stopTcpReadsWithTls(secure: tls.TLSSocket): void {
  const handle = (
    secure as unknown as { _handle?: StreamHandle & { _nativeTcpHandle?: StreamHandle | null } }
  )._handle;
  const tcp = handle?._nativeTcpHandle;
  if (!handle || !tcp || typeof tcp.readStop !== 'function' || typeof tcp.readStart !== 'function') return;
  const stop = handle.readStop;
  const start = handle.readStart;
  // The TCP handle is looked up at each call: Deno drops it (null) once the socket closed.
  handle.readStop = function (this: StreamHandle): number {
    handle._nativeTcpHandle?.readStop();
    return stop.call(this);
  };
  handle.readStart = function (this: StreamHandle): number {
    const result = start.call(this);
    handle._nativeTcpHandle?.readStart();
    return result;
  };
}

/** A TLS `node:tls` socket as a seam connection, with its handshake. */
class NodeTlsConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #raw: net.Socket;
  readonly #inner: NodeConnection;
  readonly #handshake: Promise<void>;
  #tls: TlsInfo | null = null;

  constructor(raw: net.Socket, secure: tls.TLSSocket, handshake: Promise<TlsInfo>) {
    this.#raw = raw;
    // Its errors are the TLS socket's to report (it reads and writes through it); none may go unheard.
    raw.on('error', () => {});
    // Read off the TCP socket: the TLS one reports them through its wrapped handle, where it can.
    this.local = addressOf(raw.localAddress, raw.localPort);
    this.remote = addressOf(raw.remoteAddress, raw.remotePort);
    stopTcpReadsWithTls(secure);
    this.#inner = new NodeConnection(secure);
    this.#handshake = handshake.then((info) => {
      this.#tls = info;
    });
    // Core awaits it; a connection it never gets to (closed first) must not leave a rejection unhandled.
    this.#handshake.catch(() => {});
  }

  get tls(): TlsInfo | null {
    return this.#tls;
  }

  handshake(): Promise<void> {
    return this.#handshake;
  }

  read(): Promise<Uint8Array | null> {
    return this.#inner.read();
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#inner.write(chunk);
  }

  writeText(text: string): Promise<void> | undefined {
    return this.#inner.writeText(text);
  }

  /** `TLSSocket.end()` sends close_notify, then FIN. */
  end(): Promise<void> {
    return this.#inner.end();
  }

  destroy(): void {
    this.#inner.destroy();
    this.#raw.destroy();
  }

  setNoDelay(on: boolean): void {
    this.#raw.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#raw.setKeepAlive(on);
  }
}

/** Settles once `secure` has finished its handshake (`event`), or failed or closed before. */
function handshakeOf(
  secure: tls.TLSSocket,
  event: 'secure' | 'secureConnect',
  check: () => Error | null,
  info: () => TlsInfo,
): Promise<TlsInfo> {
  return new Promise<TlsInfo>((resolve, reject) => {
    const done = () => {
      secure.off('error', failed);
      secure.off('close', closed);
      secure.off(event, succeeded);
    };
    const failed = (error: Error) => {
      done();
      reject(error);
    };
    const closed = () => {
      done();
      reject(
        Object.assign(new Error('the connection closed before the TLS handshake finished'), {
          code: 'ECONNRESET',
        }),
      );
    };
    const succeeded = () => {
      done();
      const error = check();
      if (error === null) {
        resolve(info());
        return;
      }
      secure.destroy();
      reject(error);
    };
    secure.once('error', failed);
    secure.once('close', closed);
    secure.once(event, succeeded);
  });
}

function protocolOf(secure: tls.TLSSocket): string | null {
  const protocol = secure.getProtocol();
  return typeof protocol === 'string' && protocol !== 'unknown' ? protocol : null;
}

/** What every server-side TLS socket of one listener shares: its context, made once. */
export interface ServerTls {
  readonly secureContext: tls.SecureContext;
  readonly requestCert: boolean;
}

export function serverTlsOptions(spec: TlsServerSpec): ServerTls {
  return {
    secureContext: tls.createSecureContext({
      cert: spec.cert,
      key: plainKey(spec),
      ...(spec.ca !== undefined ? { ca: spec.ca } : {}),
    }),
    requestCert: spec.requestCert,
  };
}

/** Makes a connected `node:net` socket the TLS server side. */
export function serverTls(raw: net.Socket, options: ServerTls): Connection {
  const { requestCert } = options;
  const secure = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: options.secureContext,
    requestCert,
    rejectUnauthorized: requestCert,
  });
  const handshake = handshakeOf(
    secure,
    'secure',
    () => {
      if (!requestCert) return null;
      // A standalone server TLSSocket reports an untrusted client certificate without refusing it.
      const error = verifyErrorOf(secure);
      if (error !== null) return error;
      const peer = secure.getPeerCertificate();
      if (peer === null || Object.keys(peer).length === 0)
        return Object.assign(new Error('the client sent no certificate'), {
          code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
        });
      return null;
    },
    () => {
      const servername = (secure as unknown as { servername?: unknown }).servername;
      return {
        servername: typeof servername === 'string' && servername !== '' ? servername : null,
        protocol: protocolOf(secure),
      };
    },
  );
  return new NodeTlsConnection(raw, secure, handshake);
}

/** A server-side TLS connection over a descriptor accepted with FFI (`ffi.ts`). */
export function serverTlsFromFd(fd: number, options: ServerTls): Connection {
  return serverTls(new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true }), options);
}

/** Makes a connected `node:net` socket the TLS client side of `spec.tls`. */
export function clientTls(raw: net.Socket, host: string, spec: NonNullable<ConnectSpec['tls']>): Connection {
  const secure = tls.connect({
    socket: raw,
    // The name verified: the servername when there is one, else the address connected to.
    host: host.split('%')[0] as string,
    ...(spec.servername !== undefined ? { servername: spec.servername } : {}),
    ...(spec.ca !== undefined ? { ca: spec.ca } : {}),
    ...(spec.cert !== undefined ? { cert: spec.cert } : {}),
    ...(spec.key !== undefined ? { key: spec.key } : {}),
    rejectUnauthorized: spec.verify,
  });
  const handshake = handshakeOf(
    secure,
    'secureConnect',
    () => null,
    () => ({ servername: spec.servername ?? null, protocol: protocolOf(secure) }),
  );
  return new NodeTlsConnection(raw, secure, handshake);
}

/** Connects with `node:net` (from a local address or port, if asked), then starts TLS as the client. */
export function connectNodeTls(spec: ConnectSpec): Promise<Connection> {
  const options = spec.tls;
  if (options === undefined) throw new TypeError('connectNodeTls: the spec has no tls');
  return new Promise((resolve, reject) => {
    const socket = net.connect({
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
      try {
        resolve(clientTls(socket, spec.host, options));
      } catch (error) {
        socket.destroy();
        reject(error);
      }
    });
  });
}
