import { Ipv6Address } from './address.js';
import type { Backend, Connection } from './backend.js';
import { StartupCondition } from './conditions.js';
import {
  type AddressSpec,
  checkAddress,
  checkBoolean,
  checkIpv6,
  checkKnown,
  checkService,
  describe,
  type Ipv6Mode,
  type Service,
} from './options.js';
import { resolveEndpoints, resolveService } from './resolve.js';
import { SocketHandle } from './sockets.js';
import { type Direction, type ElementType, SocketStream } from './stream.js';

export interface OpenTcpStreamOptions {
  direction?: Direction;
  elementType?: ElementType;
  /** false (the default): a failure resolves to null. true: it rejects with the condition. */
  errorp?: boolean;
  /** Seconds the connection attempt may take; null waits as long as the system does. */
  timeout?: number | null;
  readTimeout?: number | null;
  writeTimeout?: number | null;
  localAddress?: AddressSpec;
  localPort?: Service;
  ipv6?: Ipv6Mode;
  nodelay?: boolean;
  keepalive?: boolean;
}

const known = new Set([
  'direction',
  'elementType',
  'errorp',
  'timeout',
  'readTimeout',
  'writeTimeout',
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
            new StartupCondition(`connecting to ${host} port ${port} timed out after ${seconds} s`, {
              code: 'ETIMEDOUT',
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
  // Stream options are checked now too, by building the stream's option object before connecting.
  const streamOptions = {
    direction: options.direction ?? 'io',
    elementType: options.elementType ?? 'base-char',
    readTimeout: options.readTimeout ?? null,
    writeTimeout: options.writeTimeout ?? null,
  } as const;
  new SocketStream({ socket: placeholder, ...streamOptions });

  const attempt = async (): Promise<SocketStream> => {
    const port = resolveService(service);
    const endpoints = await resolveEndpoints(hostspec, options.ipv6 ?? 'any', 'any');
    let local: string | undefined;
    if (options.localAddress !== undefined && options.localAddress !== null) {
      const [first] = await resolveEndpoints(options.localAddress, options.ipv6 ?? 'any', 'any');
      local = first?.host;
    }
    const localPort = options.localPort == null ? undefined : resolveService(options.localPort, 'localPort');
    const deadline = connectTimeout(
      timeout,
      String(hostspec instanceof Ipv6Address ? hostspec.toString() : hostspec),
      port,
    );
    let last: unknown = null;
    try {
      for (const endpoint of endpoints) {
        const abandon = new AbortController();
        const pending = backend.connect({
          ...endpoint,
          port,
          localAddress: local,
          localPort,
          signal: abandon.signal,
        });
        try {
          const connection = await Promise.race([pending, deadline.promise]);
          connection.setNoDelay(options.nodelay ?? true);
          if (options.keepalive) connection.setKeepAlive(true);
          return new SocketStream({ socket: new SocketHandle(connection), ...streamOptions });
        } catch (error) {
          // An attempt past the deadline is given up, and a connection that completes anyway is closed.
          abandon.abort(error);
          pending.then(
            (late: Connection) => late.destroy(),
            () => {},
          );
          last = error;
          if (error instanceof StartupCondition && error.code === 'ETIMEDOUT') break;
        }
      }
    } finally {
      deadline.cancel();
    }
    throw last;
  };
  const result = attempt();
  return options.errorp ? result : result.catch(() => null);
}

/** Stands in for a socket while the stream options are validated. */
const placeholder: Connection = {
  local: { address: '0.0.0.0', port: 0, family: 4 },
  remote: { address: '0.0.0.0', port: 0, family: 4 },
  read: () => Promise.resolve(null),
  write: () => Promise.resolve(),
  end: () => Promise.resolve(),
  destroy: () => {},
  setNoDelay: () => {},
  setKeepAlive: () => {},
};
