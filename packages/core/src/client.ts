import { Ipv6Address, isIpv4Literal, isIpv6Literal } from './address.js';
import type { Backend, Connection } from './backend.js';
import { ConnectionError, errorCode, StartupCondition } from './conditions.js';
import { resolveEndpoints, resolveService } from './resolve.js';
import { SocketHandle } from './sockets.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT,
  defaultSslClientContext,
  handshakeWithin,
  SslClientContext,
} from './ssl.js';
import { SocketStream } from './stream.js';
import {
  type AddressSpec,
  checkAddress,
  checkBoolean,
  checkIpv6,
  checkKnown,
  checkService,
  checkStreamOptions,
  describe,
  type Ipv6Mode,
  type Service,
  type StreamOptions,
} from './validate.js';

export interface OpenTcpStreamOptions extends StreamOptions {
  /** false (the default): a failure resolves to null. true: it rejects with a `ConnectionError`. */
  errorp?: boolean;
  /** Seconds the connection attempt may take; null waits as long as the system does. */
  timeout?: number | null;
  localAddress?: AddressSpec;
  localPort?: Service;
  ipv6?: Ipv6Mode;
  nodelay?: boolean;
  keepalive?: boolean;
  /** R22: connect with TLS: a client context, or true for the default one (system roots, host name verified). */
  sslCtx?: SslClientContext | boolean | null;
  /** R22: the host name sent as SNI and verified; the hostspec when it is a name. */
  tlsextHostName?: string | null;
  /** R22: seconds the TLS handshake may take once connected (10). */
  handshakeTimeout?: number | null;
}

const known = new Set([
  'sslCtx',
  'tlsextHostName',
  'handshakeTimeout',
  'direction',
  'elementType',
  'errorp',
  'timeout',
  'readTimeout',
  'writeTimeout',
  'lineLimit',
  'localAddress',
  'localPort',
  'ipv6',
  'nodelay',
  'keepalive',
]);

function connectTimeout(
  seconds: number | null,
  host: string,
  port: number,
): { promise: Promise<never>; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    if (seconds !== null)
      timer = setTimeout(
        () =>
          reject(
            new ConnectionError(`connecting to ${host} port ${port} timed out after ${seconds} s`, {
              code: 'ETIMEDOUT',
              host,
              port,
            }),
          ),
        seconds * 1000,
      );
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** `comm:open-tcp-stream` on a given backend. Wrong options throw at the call; connection failures follow `errorp`. */
export function openTcpStream(
  backend: Backend,
  hostspec: string | number | Ipv6Address,
  service: number | string,
  options: OpenTcpStreamOptions & { errorp: true },
): Promise<SocketStream>;
export function openTcpStream(
  backend: Backend,
  hostspec: string | number | Ipv6Address,
  service: number | string,
  options?: OpenTcpStreamOptions,
): Promise<SocketStream | null>;
export function openTcpStream(
  backend: Backend,
  hostspec: string | number | Ipv6Address,
  service: number | string,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream | null> {
  if (options === null || typeof options !== 'object')
    throw new TypeError(`openTcpStream: options must be an object, not ${describe(options)}`);
  checkKnown('openTcpStream', options, known);
  checkAddress('openTcpStream', 'hostspec', hostspec);
  if (hostspec === null) throw new TypeError('openTcpStream: hostspec must name a host, not null');
  checkService('openTcpStream', 'service', service);
  if (service === null || service === 0)
    throw new TypeError(`openTcpStream: service must name a port, not ${describe(service)}`);
  for (const name of ['errorp', 'nodelay', 'keepalive'] as const)
    if (options[name] !== undefined) checkBoolean('openTcpStream', name, options[name]);
  if (options.ipv6 !== undefined) checkIpv6('openTcpStream', options.ipv6);
  if (options.localAddress !== undefined) checkAddress('openTcpStream', 'localAddress', options.localAddress);
  if (options.localPort !== undefined) checkService('openTcpStream', 'localPort', options.localPort);
  const timeout = options.timeout ?? null;
  if (timeout !== null && !(typeof timeout === 'number' && timeout > 0))
    throw new TypeError(
      `openTcpStream: option "timeout" must be a positive number of seconds or null, not ${describe(timeout)}`,
    );
  const sslCtx = options.sslCtx === true ? defaultSslClientContext() : options.sslCtx ? options.sslCtx : null;
  if (sslCtx !== null && !(sslCtx instanceof SslClientContext))
    throw new TypeError(
      `openTcpStream: option "sslCtx" must be a context from createSslClientContext, true or null, not ${describe(options.sslCtx)}`,
    );
  const tlsextHostName = options.tlsextHostName ?? null;
  if (tlsextHostName !== null && (typeof tlsextHostName !== 'string' || tlsextHostName === ''))
    throw new TypeError(
      `openTcpStream: option "tlsextHostName" must be a host name or null, not ${describe(tlsextHostName)}`,
    );
  const handshakeTimeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  if (!(typeof handshakeTimeout === 'number' && handshakeTimeout > 0 && Number.isFinite(handshakeTimeout)))
    throw new TypeError(
      `openTcpStream: option "handshakeTimeout" must be a positive number of seconds or null, not ${describe(handshakeTimeout)}`,
    );
  if (sslCtx === null && (options.tlsextHostName != null || options.handshakeTimeout != null))
    throw new TypeError(
      `openTcpStream: options "tlsextHostName" and "handshakeTimeout" are for TLS, and "sslCtx" is not given`,
    );
  // The name asked for and verified: the caller's, else the host's own name (an address has none).
  const hostName =
    typeof hostspec === 'string' && !isIpv4Literal(hostspec) && !isIpv6Literal(hostspec)
      ? hostspec
      : undefined;
  const servername = tlsextHostName ?? hostName;
  const tls = sslCtx === null ? undefined : { ...sslCtx.spec, servername };

  const streamOptions = checkStreamOptions('openTcpStream', options);

  const hostText = String(hostspec instanceof Ipv6Address ? hostspec.toString() : hostspec);
  const attempt = async (): Promise<SocketStream> => {
    let port = 0;
    let endpoints: Awaited<ReturnType<typeof resolveEndpoints>>;
    try {
      port = resolveService(service);
      endpoints = await resolveEndpoints(hostspec, options.ipv6 ?? 'any', 'any');
    } catch (error) {
      // An unknown host or service name: the same class as a refused connection, with its own code.
      throw connectionError(hostText, port, error);
    }
    let local: string | undefined;
    if (options.localAddress !== undefined && options.localAddress !== null) {
      const [first] = await resolveEndpoints(options.localAddress, options.ipv6 ?? 'any', 'any');
      local = first?.host;
    }
    const localPort = options.localPort == null ? undefined : resolveService(options.localPort, 'localPort');
    const deadline = connectTimeout(timeout, hostText, port);
    let last: unknown = null;
    let lastHost = hostText;
    try {
      for (const endpoint of endpoints) {
        const abandon = new AbortController();
        const pending = backend.connect({
          ...endpoint,
          port,
          localAddress: local,
          localPort,
          signal: abandon.signal,
          tls,
        });
        try {
          const connection = await Promise.race([pending, deadline.promise]);
          connection.setNoDelay(options.nodelay ?? true);
          if (options.keepalive) connection.setKeepAlive(true);
          if (tls !== undefined) {
            try {
              await handshakeWithin(
                connection.handshake?.() ?? Promise.resolve(),
                handshakeTimeout,
                `with ${endpoint.host} port ${port}`,
              );
            } catch (error) {
              connection.destroy();
              // A certificate that is not trusted is no reason to try the host's next address.
              throw tlsCondition(endpoint.host, port, servername, error);
            }
          }
          return new SocketStream({ socket: new SocketHandle(connection), ...streamOptions });
        } catch (error) {
          // An attempt past the deadline is given up, and a connection that completes anyway is closed.
          abandon.abort(error);
          pending.then(
            (late: Connection) => late.destroy(),
            () => {},
          );
          last = error;
          lastHost = endpoint.host;
          if (error instanceof ConnectionError && (error.code === 'ETIMEDOUT' || error.tls)) break;
        }
      }
    } finally {
      deadline.cancel();
    }
    throw connectionError(lastHost, port, last);
  };
  const result = attempt();
  return options.errorp ? result : result.catch(() => null);
}

/** A failed handshake as an error that names the host, the name verified and the runtime's reason. */
function tlsCondition(
  host: string,
  port: number,
  servername: string | undefined,
  error: unknown,
): ConnectionError {
  const reason = error instanceof Error ? error.message : String(error);
  const name = servername === undefined ? '' : ` (${servername})`;
  return new ConnectionError(`TLS with ${host} port ${port}${name} failed: ${reason}`, {
    code: errorCode(error) ?? 'ETLS',
    host,
    port,
    tls: true,
    cause: error,
  });
}

/**
 * Whatever a runtime rejected a connection with (Node's Error, Deno's ConnectionRefused, Bun's
 * own), as one class that keeps the runtime's error as its cause.
 */
function connectionError(host: string, port: number, error: unknown): ConnectionError {
  if (error instanceof ConnectionError) return error;
  const code = errorCode(error) ?? (error instanceof StartupCondition ? 'ENOTFOUND' : 'ECONNFAILED');
  // A resolution failure already says what it could not resolve.
  if (error instanceof StartupCondition)
    return new ConnectionError(error.message, { code, host, port, cause: error });
  const reason = error instanceof Error ? error.message : String(error);
  const where = host.includes(':') ? `[${host}]` : host;
  return new ConnectionError(`cannot connect to ${where} port ${port}: ${reason}`, {
    code,
    host,
    port,
    cause: error,
  });
}
