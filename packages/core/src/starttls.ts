import { StartupCondition } from './conditions.js';
import { describe } from './options.js';
import { SocketHandle } from './sockets.js';
import { handshakeWithin, SslClientContext, SslServerContext } from './ssl.js';
import type { SocketStream } from './stream.js';

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
export async function attachSsl(stream: SocketStream, options: AttachSslOptions): Promise<void> {
  const where = 'attachSsl';
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${where}: options must be an object, not ${describe(options)}`);
  const ctx = options.sslCtx === true ? new SslClientContext({ verify: true }) : options.sslCtx;
  if (!(ctx instanceof SslServerContext) && !(ctx instanceof SslClientContext))
    throw new TypeError(
      `${where}: option "sslCtx" must be a context from createSslServerContext or createSslClientContext, or true, not ${describe(options.sslCtx)}`,
    );
  const side = ctx.side;
  if (options.sslSide !== undefined && options.sslSide !== side)
    throw new TypeError(
      `${where}: option "sslSide" is '${options.sslSide}', but the context is a ${side} context`,
    );
  const handle = stream.socket;
  if (!(handle instanceof SocketHandle))
    throw new TypeError(`${where}: the stream's socket is not a handle @comm made`);
  if (stream.closed) throw new Error(`${where}: the stream is closed`);
  if (stream.unread > 0)
    throw new Error(
      `${where}: ${stream.unread} bytes are buffered unread: TLS must start where the protocol says, with nothing read ahead`,
    );
  const plain = handle.connection;
  if (plain.startTls === undefined)
    throw new StartupCondition(`${where}: this backend cannot start TLS on a connected socket`, {
      code: 'ENOTSUP',
    });
  const seconds = options.handshakeTimeout ?? (ctx instanceof SslServerContext ? ctx.handshakeTimeout : 10);
  let secure: typeof plain;
  try {
    secure =
      ctx instanceof SslServerContext
        ? plain.startTls({ side: 'server', spec: ctx.spec })
        : plain.startTls({ side: 'client', spec: { ...ctx.spec, servername: options.tlsextHostName } });
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    throw new StartupCondition(`${where}: ${error instanceof Error ? error.message : String(error)}`, {
      code: typeof code === 'string' ? code : 'ENOTSUP',
      cause: error,
    });
  }
  handle.upgrade(secure);
  try {
    await handshakeWithin(secure.handshake?.() ?? Promise.resolve(), seconds, `of attachSsl (${side})`);
  } catch (error) {
    handle.destroy();
    const code = (error as { code?: unknown } | null)?.code;
    const condition = new StartupCondition(
      `${where}: the TLS handshake as ${side} failed: ${error instanceof Error ? error.message : String(error)}`,
      { code: typeof code === 'string' ? code : 'ETLS', cause: error },
    );
    condition.tls = true;
    throw condition;
  }
}
