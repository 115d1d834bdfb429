import type { Connection } from './backend.js';
import { ConnectionError, errorCode } from './conditions.js';
import { SocketHandle } from './sockets.js';
import { handshakeWithin, SslClientContext, SslServerContext } from './ssl.js';
import { describe } from './validate.js';

/**
 * What `attachSsl` needs of its stream: a `SocketStream`, described by shape because the stream
 * calls `attachSsl` for its own `sslCtx` option, and the two modules must not import each other.
 */
export interface UpgradableStream {
  readonly socket: Connection;
  readonly closed: boolean;
  readonly unread: number;
  finishOutput(): Promise<void>;
}

export interface AttachSslOptions {
  /** A server context makes this end the TLS server; a client context (or true: the default one) the client. */
  sslCtx: SslServerContext | SslClientContext | true;
  /** Must agree with the context when given. */
  sslSide?: 'server' | 'client';
  /** Seconds the handshake may take (the server context's, else 10). */
  handshakeTimeout?: number;
  /** Client side: the name sent as SNI and verified. */
  tlsextHostName?: string;
}

/**
 * `comm:attach-ssl` (STARTTLS): makes a connected plain stream TLS, in place. Call it when the
 * protocol says so, with nothing unread in the stream (the peer's TLS handshake would be read as
 * text otherwise). Resolves once the handshake is done; rejects with a condition (and closes the
 * stream) if it fails, or where the runtime cannot upgrade this side (code `ENOTSUP`).
 */
export function attachSsl(stream: UpgradableStream, options: AttachSslOptions): Promise<void> {
  const where = 'attachSsl';
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${where}: options must be an object, not ${describe(options)}`);
  const ctx = options.sslCtx === true ? new SslClientContext({ verify: true }) : options.sslCtx;
  if (!(ctx instanceof SslServerContext) && !(ctx instanceof SslClientContext))
    throw new TypeError(
      `${where}: option "sslCtx" must be a context from createSslServerContext or createSslClientContext, or true, not ${describe(options.sslCtx)}`,
    );
  if (options.sslSide !== undefined && options.sslSide !== ctx.side)
    throw new TypeError(
      `${where}: option "sslSide" is '${options.sslSide}', but the context is a ${ctx.side} context`,
    );
  const seconds = options.handshakeTimeout ?? (ctx instanceof SslServerContext ? ctx.handshakeTimeout : 10);
  if (typeof seconds !== 'number' || !(seconds > 0) || !Number.isFinite(seconds))
    throw new TypeError(
      `${where}: option "handshakeTimeout" must be a positive number of seconds, not ${describe(seconds)}`,
    );
  const name = options.tlsextHostName;
  if (name !== undefined && (typeof name !== 'string' || name === ''))
    throw new TypeError(`${where}: option "tlsextHostName" must be a host name, not ${describe(name)}`);
  const handle = stream.socket;
  if (!(handle instanceof SocketHandle))
    throw new TypeError(`${where}: the stream's socket is not a handle @comm made`);
  if (stream.closed) throw new Error(`${where}: the stream is closed`);
  if (stream.unread > 0)
    throw new Error(
      `${where}: ${stream.unread} bytes are buffered unread: TLS must start where the protocol says, with nothing read ahead`,
    );
  return upgrade(stream, handle, ctx, seconds, name);
}

/** The asynchronous half of `attachSsl`: what fails here is a condition, and closes the stream. */
async function upgrade(
  stream: UpgradableStream,
  handle: SocketHandle,
  ctx: SslServerContext | SslClientContext,
  seconds: number,
  servername: string | undefined,
): Promise<void> {
  const where = 'attachSsl';
  // What the protocol said before the switch (`220 go ahead`) must leave in the clear.
  await stream.finishOutput();
  const plain = handle.connection;
  let secure: Connection;
  try {
    if (plain.startTls === undefined)
      throw Object.assign(new Error('this backend cannot start TLS on a connected socket'), {
        code: 'ENOTSUP',
      });
    secure =
      ctx instanceof SslServerContext
        ? plain.startTls({ side: 'server', spec: ctx.spec })
        : plain.startTls({ side: 'client', spec: { ...ctx.spec, servername } });
  } catch (error) {
    throw new ConnectionError(`${where}: ${error instanceof Error ? error.message : String(error)}`, {
      code: errorCode(error) ?? 'ENOTSUP',
      host: plain.remote.address,
      port: plain.remote.port,
      cause: error,
    });
  }
  handle.upgrade(secure);
  try {
    await handshakeWithin(secure.handshake?.() ?? Promise.resolve(), seconds, `of attachSsl (${ctx.side})`);
  } catch (error) {
    const { address, port } = plain.remote;
    handle.destroy();
    // The connection's TLS failed: a client's error class, whichever side this end plays.
    throw new ConnectionError(
      `${where}: the TLS handshake as ${ctx.side} failed: ${error instanceof Error ? error.message : String(error)}`,
      { code: errorCode(error) ?? 'ETLS', host: address, port, tls: true, cause: error },
    );
  }
}
