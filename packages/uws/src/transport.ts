import * as net from 'node:net';
import * as tls from 'node:tls';
import WebSocket from 'ws';

/**
 * The conformance suite's independent client for this backend (`RawTransport` of
 * `@comm/conformance`): comm-stream spoken directly on the `ws` library, with no @comm code
 * between the test and the WebSocket, the way any third-party client would speak it.
 */
export interface CommStreamTransport {
  readonly localPort: number;
  onData(listener: (chunk: Uint8Array) => void): void;
  onEnd(listener: () => void): void;
  write(data: Uint8Array): Promise<void>;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): void;
  /** Over TLS: the protocol agreed (`TLSv1.3`); absent on a plain transport. */
  readonly tls?: { readonly protocol: string | null };
}

/** How the raw client reaches the server: over TLS (`wss://`) when `tls` is given. */
export interface ConformanceTransportOptions {
  readonly tls?: {
    /** PEM of the authorities to trust; Node's roots when absent. */
    readonly ca?: string | Buffer;
    /** Sent as SNI and verified; the address is verified when absent. */
    readonly servername?: string;
    /** false: no verification. true by default. */
    readonly rejectUnauthorized?: boolean;
    /** A client certificate and its key. */
    readonly cert?: string | Buffer;
    readonly key?: string | Buffer;
  };
}

const WINDOW = 1024 * 1024;
/** Over TLS, a smaller window (see `TLS_WINDOW` in protocol.ts: uSockets loses input beyond 512 KiB in one read). */
const TLS_WINDOW = 256 * 1024;
const MESSAGE = 64 * 1024;

/**
 * Connects the suite's raw client to a @comm/uws server (a WebSocket on `host` port `port`);
 * with `options.tls`, over TLS (`wss://`), resolving once the handshake and the upgrade are done
 * and rejecting with Node's TLS error (its code kept) when verification fails.
 */
export function conformanceTransport(
  port: number,
  host = '127.0.0.1',
  options: ConformanceTransportOptions = {},
): Promise<CommStreamTransport> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket | null = null;
    let secure: tls.TLSSocket | null = null;
    const where = host.includes(':') ? `[${host}]` : host;
    const t = options.tls;
    const ws = new WebSocket(`${t ? 'wss' : 'ws'}://${t?.servername ?? where}:${port}/`, {
      perMessageDeflate: false,
      createConnection: () => {
        socket = net.connect({ host, port });
        // A TCP error before TLS took the socket over is the TLS socket's too; this keeps it from being unhandled.
        if (t) socket.on('error', () => {});
        if (!t) return socket;
        secure = tls.connect({
          socket,
          host,
          ...(t.servername !== undefined ? { servername: t.servername } : {}),
          ...(t.ca !== undefined ? { ca: t.ca } : {}),
          ...(t.cert !== undefined ? { cert: t.cert } : {}),
          ...(t.key !== undefined ? { key: t.key } : {}),
          rejectUnauthorized: t.rejectUnauthorized ?? true,
        });
        return secure;
      },
    });
    ws.binaryType = 'nodebuffer';
    const fail = (error: Error) => {
      ws.terminate();
      reject(error);
    };
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) =>
      fail(new Error(`${host} port ${port} answered HTTP ${res.statusCode}, not a WebSocket`)),
    );
    ws.once('open', () => {
      ws.off('error', fail);
      const raw = transport(ws, socket as unknown as net.Socket, t ? TLS_WINDOW : WINDOW);
      const agreed = secure as tls.TLSSocket | null;
      resolve(agreed ? { ...raw, tls: { protocol: agreed.getProtocol() } } : raw);
    });
  });
}

function transport(ws: WebSocket, socket: net.Socket, window: number): CommStreamTransport {
  // `ws` may emit messages in the same tick as `open`, before the caller has listened: kept until it does.
  const early: Uint8Array[] = [];
  const dataListeners: Array<(chunk: Uint8Array) => void> = [];
  const endListeners: Array<() => void> = [];
  let ended = false;
  let sent = 0;
  let acked = 0;
  let credit: Array<() => void> = [];
  let destroyed = false;
  const localPort = socket.localPort ?? 0;
  const finish = () => {
    for (const wake of credit.splice(0)) wake();
    if (ended) return;
    ended = true;
    for (const listener of endListeners) listener();
  };
  ws.on('message', (data: Buffer) => {
    if (data.length === 0) finish();
    else if (dataListeners.length === 0) early.push(new Uint8Array(data));
    else for (const listener of dataListeners) listener(new Uint8Array(data));
  });
  ws.on('ping', (payload: Buffer) => {
    const match = /^ack (\d+)$/.exec(payload.toString('latin1'));
    if (match) {
      acked = Math.max(acked, Number(match[1]));
      for (const wake of credit.splice(0)) wake();
    }
  });
  ws.on('close', finish);
  ws.on('error', finish);
  const open = () => ws.readyState === WebSocket.OPEN;
  return {
    localPort,
    onData(listener) {
      dataListeners.push(listener);
      for (const chunk of early.splice(0)) listener(chunk);
    },
    onEnd(listener) {
      endListeners.push(listener);
      if (ended) listener();
    },
    async write(data) {
      for (let at = 0; at < data.length; ) {
        if (destroyed) throw Object.assign(new Error('the client was destroyed'), { code: 'EPIPE' });
        // Closed by the server: the bytes are lost, as a TCP write after the peer's close is.
        if (!open()) return;
        const room = window - (sent - acked);
        if (room <= 0) {
          await new Promise<void>((wake) => credit.push(wake));
          continue;
        }
        const piece = data.subarray(at, at + Math.min(MESSAGE, room));
        at += piece.length;
        sent += piece.length;
        await new Promise<void>((done, failed) =>
          ws.send(piece, { binary: true }, (error) => (error ? failed(error) : done())),
        );
      }
    },
    end() {
      if (open()) ws.send(new Uint8Array(0), { binary: true });
    },
    destroy() {
      destroyed = true;
      credit = [];
      ws.terminate();
    },
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    setNoDelay: (on) => void socket.setNoDelay(on),
  };
}
