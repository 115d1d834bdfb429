import type {
  Connection,
  Listener,
  SocketAddress,
  StartTls,
  TlsInfo,
  TlsServerSpec,
} from '@comm/core/backend';
import {
  AcceptQueue,
  admitConnection,
  connectionClosed,
  ReadAhead,
  releaseConnection,
} from '@comm/core/backend';
import { addressText, isAnyAddress, KernelEnds, socketAddress } from './addresses.js';
import { ACK_PREFIX, ACK_STEP, POLICY_VIOLATION, SUBPROTOCOL, WINDOW } from './protocol.js';
import { serveServerNames, sslApp, startTlsUnsupported } from './tls.js';
import type { UwsApp, UwsListenSocket, UwsModule, UwsWebSocket, UwsWebSocketBehavior } from './uws-types.js';

/** What the backend's server side is tuned with; see `UwsBackendOptions`. */
export interface ServerTuning {
  readonly maxPayloadLength: number;
  readonly sendChunk: number;
  readonly highWater: number;
  readonly idleTimeout: number;
  readonly routes: ((app: UwsApp) => void) | undefined;
  /** TLS: how many SNI names a listener learns (see `serveServerNames`); 0 reports none. */
  readonly serverNames: number;
}

interface UserData {
  connection: UwsConnection | null;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
}

const kernel = new KernelEnds();
const EMPTY = new Uint8Array(0);

/**
 * uSockets' TLS layer (v20.30) decrypts a read's input record by record, calling uWS for each
 * message, and a write to any TLS socket of the loop meanwhile discards the input not yet
 * decrypted ("triggering a write from a read will essentially delete all input data!", in
 * us_internal_ssl_socket_write): the stream is corrupt and the connection closes (1006). Node
 * runs promise callbacks before uWS's callback returns, so a read that a message completes, and
 * the reply the reader writes, would run inside it. So a TLS listener's events reach the
 * connections after uWS's callback has returned, in order, in one batch per turn of the loop.
 */
let afterUws: Array<() => void> = [];

function later(event: () => void): void {
  if (afterUws.length === 0) setImmediate(runAfterUws);
  afterUws.push(event);
}

function runAfterUws(): void {
  const events = afterUws;
  afterUws = [];
  let failure: unknown = null;
  for (const event of events) {
    try {
      event();
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== null) throw failure;
}

/** One WebSocket accepted by uWS, as the seam's connection: comm-stream's bytes, FIN and flow control. */
export class UwsConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  #ws: UwsWebSocket<UserData> | null;
  readonly #tuning: ServerTuning;
  // uWS cannot stop reading a WebSocket: the client's window (comm-stream's acks) bounds this queue.
  readonly #incoming = new ReadAhead({ pause: () => {}, resume: () => {} });
  #unread = 0;
  #consumed = 0;
  #acked = 0;
  #finSent = false;
  #error: Error | null = null;
  #drained: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(ws: UwsWebSocket<UserData>, data: UserData, tuning: ServerTuning) {
    this.#ws = ws;
    this.#tuning = tuning;
    this.local = data.local;
    this.remote = data.remote;
  }

  /**
   * @internal uWS's message event: the message's bytes are copied (uWS neuters them afterwards),
   * unless `owned` says they are a copy already.
   */
  received(message: ArrayBuffer, owned = false): void {
    if (this.#incoming.ended) return;
    if (message.byteLength === 0) {
      this.#incoming.end();
      return;
    }
    this.#unread += message.byteLength;
    if (this.#unread > WINDOW) {
      this.#error = new Error(`the peer sent beyond comm-stream's window of ${WINDOW} bytes`);
      this.#ws?.end(POLICY_VIOLATION, 'comm-stream window exceeded');
      return;
    }
    this.#incoming.push(new Uint8Array(owned ? message : message.slice(0)));
  }

  /** @internal uWS's drain event. */
  drained(): void {
    const ws = this.#ws;
    if (!ws || ws.getBufferedAmount() > this.#tuning.highWater) return;
    for (const waiter of this.#drained.splice(0)) waiter.resolve();
  }

  /** @internal uWS's close event, at once: the WebSocket must not be touched again. */
  detach(): void {
    this.#ws = null;
  }

  /** @internal uWS's close event: the WebSocket is gone, whoever closed it. */
  closed(): void {
    this.#ws = null;
    this.#incoming.end();
    // An error (and its stack) only for writes that wait: most connections close with none.
    if (this.#drained.length === 0) return;
    const error = this.#error ?? connectionClosed();
    for (const waiter of this.#drained.splice(0)) waiter.reject(error);
  }

  async read(): Promise<Uint8Array | null> {
    const chunk = await this.#incoming.read();
    if (chunk === null) return null;
    this.#unread -= chunk.length;
    this.#consumed += chunk.length;
    if (this.#consumed - this.#acked >= ACK_STEP && this.#ws) {
      this.#acked = this.#consumed;
      this.#ws.ping(`${ACK_PREFIX}${this.#consumed}`);
    }
    return chunk;
  }

  /** Splits `chunk` into messages of at most `sendChunk` bytes; waits for uWS's drain while more than `highWater` bytes wait to be sent. */
  write(chunk: Uint8Array): Promise<void> | undefined {
    const { sendChunk, highWater } = this.#tuning;
    try {
      if (chunk.length > sendChunk || this.#live().getBufferedAmount() > highWater)
        return this.#writeAll(chunk);
      this.#send(chunk);
      return this.#live().getBufferedAmount() > highWater ? this.#drain() : undefined;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    const { sendChunk, highWater } = this.#tuning;
    for (let at = 0; at < chunk.length; at += sendChunk) {
      if (this.#live().getBufferedAmount() > highWater) await this.#drain();
      this.#send(chunk.subarray(at, at + sendChunk));
    }
    if (this.#ws && this.#ws.getBufferedAmount() > highWater) await this.#drain();
  }

  #send(piece: Uint8Array): void {
    const ws = this.#live();
    let status = 1;
    ws.cork(() => {
      status = ws.send(piece, true, false);
    });
    // 2: dropped, past maxBackpressure. The backend keeps far below it, so this is a broken connection.
    if (status === 2) {
      this.#error = new Error('uWS dropped a message (backpressure limit)');
      this.destroy();
      throw this.#error;
    }
  }

  #drain(): Promise<void> {
    return new Promise((resolve, reject) => this.#drained.push({ resolve, reject }));
  }

  #live(): UwsWebSocket<UserData> {
    if (!this.#ws || this.#finSent) throw this.#error ?? connectionClosed();
    return this.#ws;
  }

  async end(): Promise<void> {
    const ws = this.#ws;
    if (!ws || this.#finSent) return;
    this.#finSent = true;
    ws.cork(() => ws.send(EMPTY, true, false));
  }

  destroy(): void {
    const ws = this.#ws;
    this.#incoming.destroy();
    // A close frame after what is buffered: what was written still reaches the peer, as TCP's FIN would.
    if (ws) ws.end(1000);
    this.closed();
  }

  /** uWS sets TCP_NODELAY on every socket it accepts and offers no way to clear it: a declared deviation. */
  setNoDelay(_on: boolean): void {}

  /** uWS has no SO_KEEPALIVE: a declared deviation. Its idle timeout with automatic pings finds dead peers. */
  setKeepAlive(_on: boolean): void {}

  /** uWS has no STARTTLS (R22): a declared deviation. */
  startTls(_upgrade: StartTls): Connection {
    throw startTlsUnsupported('server');
  }
}

/**
 * A connection of a TLS listener (SSLApp, wss). uWS finishes the handshake (and the upgrade)
 * before `open`, so it comes to core secure: no `handshake()` to await.
 */
export class UwsTlsConnection extends UwsConnection {
  /** The SNI name the client asked for, if the listener learned it; uWS does not tell the protocol. */
  readonly tls: TlsInfo;

  constructor(ws: UwsWebSocket<UserData>, data: UserData, tuning: ServerTuning, tls: TlsInfo) {
    super(ws, data, tuning);
    this.tls = tls;
  }
}

/** A uWS app listening on one address and port: WebSocket upgrades on every path are connections. */
export class UwsListener implements Listener {
  readonly local: SocketAddress;
  readonly #uws: UwsModule;
  #socket: UwsListenSocket | null;
  readonly #accepted: AcceptQueue;

  constructor(uws: UwsModule, socket: UwsListenSocket, local: SocketAddress, accepted: AcceptQueue) {
    this.#uws = uws;
    this.#socket = socket;
    this.local = local;
    this.#accepted = accepted;
  }

  accept(): Promise<Connection | null> {
    return this.#accepted.accept();
  }

  async close(): Promise<void> {
    this.#accepted.close();
    const socket = this.#socket;
    this.#socket = null;
    // Connections already accepted stay open: they belong to whoever took them (R15).
    if (socket) this.#uws.us_listen_socket_close(socket);
  }
}

export interface ListenRequest {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly ipv6Only: boolean;
  readonly reusePort: boolean;
  /** TLS: an SSLApp; checked beforehand (`checkServerTls`). */
  readonly tls?: TlsServerSpec | undefined;
}

/** Opens a uWS app on `request`; resolves with the listener, or with null when uWS could not listen. */
export function listenUws(
  uws: UwsModule,
  request: ListenRequest,
  tuning: ServerTuning,
): Promise<UwsListener | null> {
  const accepted = new AcceptQueue();
  let listenPort = 0;
  const tls = request.tls;
  /**
   * The WebSocket endpoint. `servername`: undefined on a plain listener; on a TLS one, the SNI
   * name whose router it serves (null: the default router, for clients whose name is not known).
   */
  const endpoint = (servername: string | null | undefined): UwsWebSocketBehavior<UserData> => ({
    maxPayloadLength: tuning.maxPayloadLength,
    // A drop threshold only: writes wait for drain long before it (never unbounded buffering).
    maxBackpressure: tuning.highWater + 4 * tuning.sendChunk + 64 * 1024,
    closeOnBackpressureLimit: false,
    idleTimeout: tuning.idleTimeout,
    sendPingsAutomatically: tuning.idleTimeout > 0,
    compression: 0,
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const offered = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const remoteBytes = new Uint8Array(res.getRemoteAddress().slice(0));
      const mapped =
        remoteBytes.length === 16 &&
        remoteBytes.subarray(0, 10).every((b) => b === 0) &&
        remoteBytes[10] === 0xff &&
        remoteBytes[11] === 0xff;
      if (request.ipv6Only && mapped) {
        // uWS listens dual-stack whatever it is asked: IPv4 clients are kept from `function` here.
        res.writeStatus('403 Forbidden').end('this server takes IPv6 clients only', true);
        return;
      }
      const reported = typeof res.getRemotePort === 'function' ? res.getRemotePort() : null;
      // The kernel is asked only for what uWS does not say: the peer's port, or the local address of `::`.
      const ends =
        reported === null || isAnyAddress(request.host)
          ? kernel.find(listenPort, remoteBytes, reported)
          : null;
      const remote = socketAddress(remoteBytes, reported ?? ends?.remotePort ?? 0);
      const local =
        isAnyAddress(request.host) && ends
          ? socketAddress(ends.local, listenPort)
          : { address: request.host, port: listenPort, family: request.family };
      const protocol = offered === SUBPROTOCOL || offersProtocol(offered) ? SUBPROTOCOL : '';
      res.upgrade<UserData>({ connection: null, local, remote }, key, protocol, extensions, context);
    },
    open: (ws) => {
      if (!admitConnection()) {
        // Out of descriptors but for the reserve (R14a): closed at once, or uSockets spins on EMFILE.
        ws.close();
        return;
      }
      const data = ws.getUserData();
      if (servername === undefined) {
        const connection = new UwsConnection(ws, data, tuning);
        data.connection = connection;
        accepted.push(connection);
        return;
      }
      const connection = new UwsTlsConnection(ws, data, tuning, { servername, protocol: null });
      data.connection = connection;
      later(() => accepted.push(connection));
    },
    ...(servername === undefined
      ? {
          message: (ws, message) => ws.getUserData().connection?.received(message),
          drain: (ws) => ws.getUserData().connection?.drained(),
          close: (ws) => {
            const data = ws.getUserData();
            if (data.connection === null) return;
            data.connection.closed();
            data.connection = null;
            releaseConnection();
          },
        }
      : {
          // TLS: after uWS's callback (see `later`); the message is copied now, as uWS neuters it.
          message: (ws, message) => {
            const connection = ws.getUserData().connection;
            if (!connection) return;
            const copy = message.slice(0);
            later(() => connection.received(copy, true));
          },
          drain: (ws) => {
            const connection = ws.getUserData().connection;
            if (connection) later(() => connection.drained());
          },
          close: (ws) => {
            const data = ws.getUserData();
            const connection = data.connection;
            if (connection === null) return;
            data.connection = null;
            // The WebSocket is gone now; what waits on it learns so after the messages before the close.
            connection.detach();
            releaseConnection();
            later(() => connection.closed());
          },
        }),
  });
  /** A router's routes: the caller's, the endpoint, and 426 for the rest. */
  const register = (router: UwsApp, servername: string | null | undefined) => {
    tuning.routes?.(router);
    router.ws<UserData>('/*', endpoint(servername));
    // Any other request (what `routes` does not serve) is told to upgrade.
    router.any('/*', (res) => {
      res
        .writeStatus('426 Upgrade Required')
        .writeHeader('Upgrade', 'websocket')
        .end('comm-stream: connect with a WebSocket\n', true);
    });
  };
  let app: UwsApp;
  if (tls === undefined) {
    app = uws.App();
    register(app, undefined);
  } else {
    app = sslApp(uws, tls);
    register(app, null);
    serveServerNames(app, tls, tuning.serverNames, register);
  }
  const exclusive = uws.LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;
  return new Promise((resolve) => {
    app.listen(request.host, request.port, request.reusePort ? 0 : exclusive, (socket) => {
      if (!socket) {
        resolve(null);
        return;
      }
      listenPort = uws.us_socket_local_port(socket);
      const local: SocketAddress = { address: request.host, port: listenPort, family: request.family };
      resolve(new UwsListener(uws, socket, local, accepted));
    });
  });
}

/** True if a Sec-WebSocket-Protocol list names comm-stream. */
function offersProtocol(offered: string): boolean {
  return offered.split(',').some((p) => p.trim() === SUBPROTOCOL);
}

/** For tests: the text of a uWS binary address. */
export { addressText };
