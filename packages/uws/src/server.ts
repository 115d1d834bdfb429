import type { Connection, Listener, SocketAddress } from '@comm/core';
import { AcceptQueue, admitConnection, connectionClosed, ReadAhead, releaseConnection } from '@comm/core';
import { addressText, isAnyAddress, KernelEnds, socketAddress } from './addresses.js';
import { ACK_PREFIX, ACK_STEP, POLICY_VIOLATION, SUBPROTOCOL, WINDOW } from './protocol.js';
import type { UwsApp, UwsListenSocket, UwsModule, UwsWebSocket } from './uws-types.js';

/** What the backend's server side is tuned with; see `UwsBackendOptions`. */
export interface ServerTuning {
  readonly maxPayloadLength: number;
  readonly sendChunk: number;
  readonly highWater: number;
  readonly idleTimeout: number;
  readonly routes: ((app: UwsApp) => void) | undefined;
}

interface UserData {
  connection: UwsConnection | null;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
}

const kernel = new KernelEnds();
const EMPTY = new Uint8Array(0);

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

  /** @internal uWS's message event: the message's bytes are copied (uWS neuters them afterwards). */
  received(message: ArrayBuffer): void {
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
    this.#incoming.push(new Uint8Array(message.slice(0)));
  }

  /** @internal uWS's drain event. */
  drained(): void {
    const ws = this.#ws;
    if (!ws || ws.getBufferedAmount() > this.#tuning.highWater) return;
    for (const waiter of this.#drained.splice(0)) waiter.resolve();
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
}

/** Opens a uWS app on `request`; resolves with the listener, or with null when uWS could not listen. */
export function listenUws(
  uws: UwsModule,
  request: ListenRequest,
  tuning: ServerTuning,
): Promise<UwsListener | null> {
  const accepted = new AcceptQueue();
  let listenPort = 0;
  const app = uws.App();
  tuning.routes?.(app);
  app.ws<UserData>('/*', {
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
      const connection = new UwsConnection(ws, data, tuning);
      data.connection = connection;
      accepted.push(connection);
    },
    message: (ws, message) => ws.getUserData().connection?.received(message),
    drain: (ws) => ws.getUserData().connection?.drained(),
    close: (ws) => {
      const data = ws.getUserData();
      if (data.connection === null) return;
      data.connection.closed();
      data.connection = null;
      releaseConnection();
    },
  });
  // Any other request (what `routes` does not serve) is told to upgrade.
  app.any('/*', (res) => {
    res
      .writeStatus('426 Upgrade Required')
      .writeHeader('Upgrade', 'websocket')
      .end('comm-stream: connect with a WebSocket\n', true);
  });
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
