import * as net from 'node:net';
import * as tls from 'node:tls';
import type {
  Connection,
  ConnectSpec,
  SocketAddress,
  StartTls,
  TlsClientSpec,
  TlsInfo,
} from '@comm/core/backend';
import { connectionClosed, ReadAhead } from '@comm/core/backend';
import WebSocket from 'ws';
import { MAX_CLIENT_MESSAGE, parseAck, SUBPROTOCOL, TLS_WINDOW, WINDOW } from './protocol.js';
import { startTlsUnsupported } from './tls.js';

/** Bytes the `ws` library may buffer before a write waits for them to reach the kernel. */
const HIGH_WATER = 256 * 1024;

function family(value: string | number | undefined): 4 | 6 {
  return value === 'IPv6' || value === 6 ? 6 : 4;
}

/** The URL's host: IPv6 in brackets, its scope's `%` escaped. */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host.replace('%', '%25')}]` : host;
}

/** A WebSocket client connection to a @comm/uws server, as the seam's connection (openTcpStream). */
export class WsConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #ws: WebSocket;
  readonly #socket: net.Socket;
  readonly #incoming: ReadAhead;
  #sent = 0;
  #acked = 0;
  #finSent = false;
  #destroyed = false;
  #error: Error | null = null;
  #waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  readonly #window: number;

  /** `window`: bytes this client keeps sent beyond the server's last acknowledgement (at most comm-stream's). */
  constructor(ws: WebSocket, socket: net.Socket, remote: SocketAddress, window = WINDOW) {
    this.#ws = ws;
    this.#window = window;
    this.#socket = socket;
    this.local = {
      address: socket.localAddress ?? '',
      port: socket.localPort ?? 0,
      family: family(socket.localFamily),
    };
    this.remote = remote;
    // Read-ahead pauses the socket while messages wait unread: TCP backpressure on the server. It
    // flows from the start, so that the server's acknowledgements reach a client that only writes.
    this.#incoming = new ReadAhead(ws, { flowing: true });
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) this.#incoming.end();
      else this.#incoming.push(new Uint8Array(data.buffer, data.byteOffset, data.length));
    });
    ws.on('ping', (payload: Buffer) => {
      const ack = parseAck(payload);
      if (ack !== null && ack > this.#acked) {
        this.#acked = ack;
        this.#wake(null);
      }
    });
    ws.on('close', () => {
      this.#incoming.end();
      this.#wake(this.#error ?? new Error('the connection closed before the write completed'));
    });
    ws.on('error', (error: Error) => {
      this.#error = error;
      this.#incoming.end();
    });
  }

  #wake(error: Error | null): void {
    for (const waiter of this.#waiters.splice(0)) {
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
  }

  #wait(): Promise<void> {
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #check(): void {
    if (this.#destroyed || this.#finSent || this.#ws.readyState !== WebSocket.OPEN)
      throw this.#error ?? connectionClosed();
  }

  read(): Promise<Uint8Array | null> {
    return this.#incoming.read();
  }

  /** Sends `chunk` in messages of at most 64 KiB, within the server's window; paced by the socket. */
  async write(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      this.#check();
      const room = this.#window - (this.#sent - this.#acked);
      if (room <= 0) {
        await this.#wait();
        continue;
      }
      const piece = chunk.subarray(at, at + Math.min(MAX_CLIENT_MESSAGE, room));
      at += piece.length;
      this.#sent += piece.length;
      await this.#send(piece, this.#ws.bufferedAmount + piece.length > HIGH_WATER);
    }
  }

  /** Sends one message; with `settle`, resolves once it reached the kernel. */
  #send(piece: Uint8Array, settle: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ws.send(piece, { binary: true }, (error) => {
        if (settle) {
          if (error) reject(error);
          else resolve();
        }
      });
      if (!settle) resolve();
    });
  }

  async end(): Promise<void> {
    if (this.#destroyed || this.#finSent || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#finSent = true;
    await this.#send(new Uint8Array(0), true).catch(() => {});
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#incoming.destroy();
    this.#wake(Object.assign(new Error('the connection was destroyed'), { code: 'ECONNRESET' }));
    // A close frame after what is queued: what was written still reaches the server.
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
    else this.#ws.terminate();
  }

  setNoDelay(on: boolean): void {
    this.#socket.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#socket.setKeepAlive(on);
  }

  /** A uWS server cannot start TLS on a connection (R22): a declared deviation. */
  startTls(_upgrade: StartTls): Connection {
    throw startTlsUnsupported('client');
  }
}

/**
 * A `wss://` connection: given to core once TCP is connected; `handshake()` is the TLS handshake
 * and the WebSocket upgrade after it, which core awaits within its `handshakeTimeout`.
 */
export class WssConnection extends WsConnection {
  readonly #handshake: Promise<void>;
  #tls: TlsInfo | null = null;

  constructor(ws: WebSocket, socket: net.Socket, remote: SocketAddress, handshake: Promise<TlsInfo>) {
    super(ws, socket, remote, TLS_WINDOW);
    this.#handshake = handshake.then((info) => {
      this.#tls = info;
    });
    // Core awaits it; a connection given up before that must not leave a rejection unhandled.
    this.#handshake.catch(() => {});
  }

  /** Resolves once TLS is up and the server accepted the upgrade; rejects with TLS's error (its code kept). */
  handshake(): Promise<void> {
    return this.#handshake;
  }

  /** The name asked for (SNI) and the protocol agreed, once the handshake is done; null before. */
  get tls(): TlsInfo | null {
    return this.#tls;
  }
}

/** Opens a WebSocket to a @comm/uws server on `spec`, over a TCP socket made here (so local address and port apply). */
export function connectWs(spec: ConnectSpec, path = '/'): Promise<WsConnection> {
  if (spec.tls !== undefined) return connectWss(spec, spec.tls, path);
  return new Promise((resolve, reject) => {
    let socket: net.Socket | null = null;
    const ws = new WebSocket(`ws://${urlHost(spec.host)}:${spec.port}${path}`, [SUBPROTOCOL], {
      perMessageDeflate: false,
      autoPong: true,
      createConnection: () => {
        socket = net.connect({
          host: spec.host,
          port: spec.port,
          family: spec.family,
          ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
          ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
        });
        return socket;
      },
    });
    ws.binaryType = 'nodebuffer';
    const onError = (error: Error) => {
      ws.terminate();
      reject(error);
    };
    ws.once('error', onError);
    ws.once('unexpected-response', (_request, response) => {
      ws.terminate();
      reject(
        Object.assign(
          new Error(
            `${spec.host} port ${spec.port} answered HTTP ${response.statusCode} instead of a WebSocket`,
          ),
          { code: 'EPROTO' },
        ),
      );
    });
    ws.once('open', () => {
      ws.off('error', onError);
      const remote = { address: spec.host, port: spec.port, family: spec.family };
      resolve(new WsConnection(ws, socket as unknown as net.Socket, remote));
    });
  });
}

/** Node's TLS options for `spec`: verification on unless `verify` is false, of `servername`, else of the address. */
export function tlsOptions(socket: net.Socket, host: string, spec: TlsClientSpec): tls.ConnectionOptions {
  return {
    socket,
    // Verified when no servername is given: Node then checks the address against the certificate's IP names.
    host,
    ...(spec.servername !== undefined ? { servername: spec.servername } : {}),
    ...(spec.ca !== undefined ? { ca: spec.ca } : {}),
    ...(spec.cert !== undefined ? { cert: spec.cert } : {}),
    ...(spec.key !== undefined ? { key: spec.key } : {}),
    rejectUnauthorized: spec.verify,
  };
}

/**
 * `connectWs` with TLS: resolves once TCP is connected (a refused or unreachable server rejects);
 * the TLS handshake and the upgrade are the connection's `handshake()`.
 */
function connectWss(spec: ConnectSpec, secure: TlsClientSpec, path: string): Promise<WsConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: spec.host,
      port: spec.port,
      family: spec.family,
      ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
      ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
    });
    let tlsSocket: tls.TLSSocket | null = null;
    // The Host header names the server as SNI does, else its address.
    const where = secure.servername ?? urlHost(spec.host);
    const ws = new WebSocket(`wss://${where}:${spec.port}${path}`, [SUBPROTOCOL], {
      perMessageDeflate: false,
      autoPong: true,
      createConnection: () => {
        tlsSocket = tls.connect(tlsOptions(socket, spec.host, secure));
        return tlsSocket;
      },
    });
    ws.binaryType = 'nodebuffer';
    let connected = false;
    const handshake = new Promise<TlsInfo>((done, failed) => {
      let settled = false;
      // Stays on: `ws` may report an error again while it aborts the handshake.
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        ws.terminate();
        failed(error);
      };
      ws.on('error', fail);
      ws.once('close', () =>
        fail(
          Object.assign(new Error('the server closed the connection during the TLS handshake'), {
            code: 'ECONNRESET',
          }),
        ),
      );
      ws.once('unexpected-response', (_request, response) =>
        fail(
          Object.assign(
            new Error(
              `${spec.host} port ${spec.port} answered HTTP ${response.statusCode} instead of a WebSocket`,
            ),
            { code: 'EPROTO' },
          ),
        ),
      );
      ws.once('open', () => {
        settled = true;
        done({ servername: secure.servername ?? null, protocol: tlsSocket?.getProtocol() ?? null });
      });
    });
    // Before TCP is connected a failure is the connect's; after, the handshake's.
    handshake.catch((error: Error) => {
      if (!connected) reject(error);
    });
    // Kept on: after the TLS socket took the TCP socket over, its errors are the TLS socket's business.
    socket.on('error', (error) => {
      if (connected) return;
      ws.terminate();
      reject(error);
    });
    socket.once('connect', () => {
      connected = true;
      const remote = { address: spec.host, port: spec.port, family: spec.family };
      resolve(new WssConnection(ws, socket, remote, handshake));
    });
  });
}
