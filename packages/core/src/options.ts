import { Ipv6Address } from './address.js';
import type { ProxyVersion } from './proxy-header.js';
import type { ListeningSocket, SocketHandle } from './sockets.js';
import type { SslServerContext } from './ssl.js';
import type { SocketStream } from './stream.js';
import { LOOPBACK_SOURCES, type TrustedSources, trustedSources } from './trusted.js';

/** Anything with `write(string)`: a Node stream, a Deno/Bun writer wrapper, an array collector. */
export interface Writable {
  write(text: string): unknown;
}

export type Ipv6Mode = 'any' | 'both' | boolean;
export type Service = number | string | null;
export type AddressSpec = string | number | Ipv6Address | null;
export type Direction = 'input' | 'output' | 'io';
/** Lisp's element types; every stream is bivalent, so this records intent and nothing more. */
export type ElementType = 'base-char' | 'character' | 'unsigned-byte';

/** How a `SocketStream` reads and writes: what `createStream` and `openTcpStream` take too. */
export interface StreamOptions {
  direction?: Direction;
  elementType?: ElementType;
  /** Seconds without input after which a read sees end of file; null (the default) waits for ever. */
  readTimeout?: number | null;
  /** Seconds a write may take to be taken by the peer before it fails; null (the default) waits for ever. */
  writeTimeout?: number | null;
  /** The longest line `readLine` accepts, in bytes (1 MiB by default). */
  lineLimit?: number;
}

export const DEFAULT_LINE_LIMIT = 1024 * 1024;

/** Stream options after defaults and validation. */
export interface StreamSettings {
  readonly direction: Direction;
  readonly elementType: ElementType;
  readonly readTimeout: number | null;
  readonly writeTimeout: number | null;
  readonly lineLimit: number;
}

/** What `announce` is called with: the listening socket, or `null` and why not. */
export type AnnounceFunction = (socket: ListeningSocket | null, condition: Error | null) => void;

interface CommonServerOptions {
  announce?: Writable | AnnounceFunction | boolean | null;
  service?: Service;
  localPort?: Service;
  address?: AddressSpec;
  localAddress?: AddressSpec;
  backlog?: number | null;
  nodelay?: boolean;
  keepalive?: boolean;
  processName?: string;
  wait?: boolean;
  error?: boolean;
  ipv6?: Ipv6Mode;
  reuseport?: boolean;
  /** R21: every connection begins with a PROXY protocol header of this version (`true`: either). */
  proxyProtocol?: boolean | 'v1' | 'v2';
  /** R21: who may send that header: addresses or CIDR blocks. Loopback only by default. */
  trustedProxies?: readonly string[];
  /** R21: seconds a connection has to send its header. 5 by default. */
  proxyHeaderTimeout?: number;
  /** R22: serve TLS with this context (`createSslServerContext`); every connection's handshake is done before `function`. */
  sslCtx?: SslServerContext | null;
  /** The built-in listener evaluates what clients send: it serves other addresses than loopback only with this. */
  allowRemoteListener?: boolean;
}

/** `function` gets the socket handle (R1). */
export type StartUpServerOptions = CommonServerOptions & {
  createStream?: false;
  function?: ((handle: SocketHandle) => unknown) | null;
};

/**
 * With `createStream: true`, `function` gets a `SocketStream` on the handle (R1); with an object,
 * a stream made with those options (`{ lineLimit, readTimeout, writeTimeout }`).
 */
export type StartUpStreamServerOptions = CommonServerOptions & {
  createStream: true | StreamOptions;
  function?: ((stream: SocketStream) => unknown) | null;
};

export type AnyServerOptions = StartUpServerOptions | StartUpStreamServerOptions;

/** The options after defaults, synonyms and validation. */
export interface ServerOptions {
  readonly function: ((handle: never) => unknown) | null;
  /** The options of the stream `function` gets; null: it gets the handle. */
  readonly createStream: StreamSettings | null;
  readonly announce: Writable | AnnounceFunction | null;
  readonly service: Service;
  readonly address: AddressSpec;
  readonly backlog: number | null;
  readonly nodelay: boolean;
  readonly keepalive: boolean;
  readonly processName: string;
  readonly wait: boolean;
  readonly error: boolean;
  readonly ipv6: Ipv6Mode;
  readonly reuseport: boolean;
  /** null: no PROXY protocol. */
  readonly proxyProtocol: ProxyVersion | null;
  readonly trustedProxies: TrustedSources;
  readonly proxyHeaderTimeout: number;
  readonly sslCtx: SslServerContext | null;
  readonly allowRemoteListener: boolean;
}

const known = new Set([
  'function',
  'createStream',
  'announce',
  'service',
  'localPort',
  'address',
  'localAddress',
  'backlog',
  'nodelay',
  'keepalive',
  'processName',
  'wait',
  'error',
  'ipv6',
  'reuseport',
  'proxyProtocol',
  'trustedProxies',
  'proxyHeaderTimeout',
  'sslCtx',
  'allowRemoteListener',
]);

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  return String(value);
}

function fail(option: string, expected: string, value: unknown): never {
  throw new TypeError(`startUpServer: option "${option}" must be ${expected}, not ${describe(value)}`);
}

export function checkBoolean(where: string, option: string, value: unknown): void {
  if (typeof value !== 'boolean')
    throw new TypeError(`${where}: option "${option}" must be a boolean, not ${describe(value)}`);
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
}

export function checkService(where: string, option: string, value: unknown): void {
  if (value === null || typeof value === 'string') {
    if (value === '') throw new TypeError(`${where}: option "${option}" must not be an empty string`);
    return;
  }
  if (!isPort(value))
    throw new TypeError(
      `${where}: option "${option}" must be a port number (0-65535), a service name or null, not ${describe(value)}`,
    );
}

export function checkAddress(where: string, option: string, value: unknown): void {
  if (value === null || value instanceof Ipv6Address) return;
  if (typeof value === 'string') {
    if (value === '') throw new TypeError(`${where}: option "${option}" must not be an empty string`);
    return;
  }
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return;
  throw new TypeError(
    `${where}: option "${option}" must be an IP address string, a host name, an IPv4 integer (0-0xFFFFFFFF), an Ipv6Address or null, not ${describe(value)}`,
  );
}

export function checkIpv6(where: string, value: unknown): void {
  if (value !== 'any' && value !== 'both' && typeof value !== 'boolean')
    throw new TypeError(
      `${where}: option "ipv6" must be 'any', 'both', true or false, not ${describe(value)}`,
    );
}

export function checkKnown(where: string, options: object, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(options))
    if (!allowed.has(key))
      throw new TypeError(`${where}: unknown option "${key}"; known options are ${[...allowed].join(', ')}`);
}

/** A positive number of seconds, or null (given as null or left out). */
export function checkSeconds(where: string, option: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw new TypeError(
      `${where}: option "${option}" must be a positive number of seconds or null, not ${describe(value)}`,
    );
  return value;
}

/** Validates the stream options in `o` (named with `prefix`, as in "createStream.lineLimit") and applies their defaults. */
export function checkStreamOptions(where: string, o: StreamOptions, prefix = ''): StreamSettings {
  const direction = o.direction ?? 'io';
  if (direction !== 'input' && direction !== 'output' && direction !== 'io')
    throw new TypeError(
      `${where}: option "${prefix}direction" must be 'input', 'output' or 'io', not ${describe(direction)}`,
    );
  const elementType = o.elementType ?? 'base-char';
  if (elementType !== 'base-char' && elementType !== 'character' && elementType !== 'unsigned-byte')
    throw new TypeError(
      `${where}: option "${prefix}elementType" must be 'base-char', 'character' or 'unsigned-byte', not ${describe(elementType)}`,
    );
  const lineLimit = o.lineLimit ?? DEFAULT_LINE_LIMIT;
  if (!Number.isInteger(lineLimit) || lineLimit <= 0)
    throw new TypeError(
      `${where}: option "${prefix}lineLimit" must be a positive integer, not ${describe(lineLimit)}`,
    );
  return {
    direction,
    elementType,
    readTimeout: checkSeconds(where, `${prefix}readTimeout`, o.readTimeout),
    writeTimeout: checkSeconds(where, `${prefix}writeTimeout`, o.writeTimeout),
    lineLimit,
  };
}

const streamOptionNames = new Set(['direction', 'elementType', 'readTimeout', 'writeTimeout', 'lineLimit']);

/** Picks one value of a synonym pair (`service`/`localPort`), refusing two different ones. */
export function synonym<T>(
  where: string,
  options: Record<string, unknown>,
  a: string,
  b: string,
  fallback: T,
  same: (x: unknown, y: unknown) => boolean = Object.is,
): T {
  const hasA = options[a] !== undefined;
  const hasB = options[b] !== undefined;
  if (hasA && hasB && !same(options[a], options[b]))
    throw new TypeError(
      `${where}: options "${a}" and "${b}" are synonyms and were given different values (${describe(options[a])} and ${describe(options[b])})`,
    );
  if (hasA) return options[a] as T;
  if (hasB) return options[b] as T;
  return fallback;
}

function sameAddress(x: unknown, y: unknown): boolean {
  if (x instanceof Ipv6Address && y instanceof Ipv6Address) return x.equals(y);
  return Object.is(x, y);
}

/** How Lisp's `(format nil "~S" service)` prints a service. */
export function formatS(service: Service): string {
  if (service === null) return 'NIL';
  if (typeof service === 'number') return String(service);
  return `"${service.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export function normalizeServerOptions(input: unknown): ServerOptions {
  if (input === undefined) input = {};
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new TypeError(`startUpServer: options must be an object, not ${describe(input)}`);
  const o = input as Record<string, unknown>;
  checkKnown('startUpServer', o, known);

  const fn = o.function ?? null;
  if (fn !== null && typeof fn !== 'function') fail('function', 'a function or null', fn);

  const announce = o.announce ?? null;
  if (
    announce !== null &&
    typeof announce !== 'boolean' &&
    typeof announce !== 'function' &&
    !(typeof announce === 'object' && typeof (announce as Writable).write === 'function')
  )
    fail('announce', 'true, false, null, a function or an object with write(string)', announce);

  const service = synonym<Service>('startUpServer', o, 'service', 'localPort', 'lispworks');
  checkService('startUpServer', o.service !== undefined ? 'service' : 'localPort', service);
  const address = synonym<AddressSpec>('startUpServer', o, 'address', 'localAddress', null, sameAddress);
  checkAddress('startUpServer', o.address !== undefined ? 'address' : 'localAddress', address);

  const backlog = o.backlog === undefined ? 5 : o.backlog;
  if (backlog !== null && !(Number.isInteger(backlog) && (backlog as number) > 0))
    fail('backlog', 'a positive integer or null', backlog);

  let createStream: StreamSettings | null = null;
  const cs = o.createStream;
  if (cs !== null && typeof cs === 'object' && !Array.isArray(cs)) {
    for (const key of Object.keys(cs))
      if (!streamOptionNames.has(key))
        throw new TypeError(
          `startUpServer: unknown option "createStream.${key}"; the stream's options are ${[...streamOptionNames].join(', ')}`,
        );
    createStream = checkStreamOptions('startUpServer', cs as StreamOptions, 'createStream.');
  } else if (cs !== undefined && typeof cs !== 'boolean') {
    fail('createStream', 'a boolean or an object of stream options ({ lineLimit, readTimeout, ... })', cs);
  } else if (cs === true) createStream = checkStreamOptions('startUpServer', {});

  for (const name of ['nodelay', 'keepalive', 'wait', 'error', 'reuseport', 'allowRemoteListener'])
    if (o[name] !== undefined) checkBoolean('startUpServer', name, o[name]);
  const wait = (o.wait as boolean | undefined) ?? false;

  const ipv6 = o.ipv6 === undefined ? 'any' : o.ipv6;
  checkIpv6('startUpServer', ipv6);

  const proxyProtocol = o.proxyProtocol ?? false;
  if (proxyProtocol !== 'v1' && proxyProtocol !== 'v2' && typeof proxyProtocol !== 'boolean')
    fail('proxyProtocol', "false, 'v1', 'v2' or true (either)", proxyProtocol);
  const trusted = o.trustedProxies ?? LOOPBACK_SOURCES;
  if (!Array.isArray(trusted) || trusted.some((entry) => typeof entry !== 'string'))
    fail('trustedProxies', 'an array of addresses or CIDR blocks (strings)', trusted);
  let trustedProxies: TrustedSources;
  try {
    trustedProxies = trustedSources(trusted as string[]);
  } catch (error) {
    throw new TypeError(`startUpServer: option ${(error as Error).message}`);
  }
  const proxyHeaderTimeout = o.proxyHeaderTimeout ?? 5;
  if (
    typeof proxyHeaderTimeout !== 'number' ||
    !(proxyHeaderTimeout > 0) ||
    !Number.isFinite(proxyHeaderTimeout)
  )
    fail('proxyHeaderTimeout', 'a positive number of seconds', proxyHeaderTimeout);

  // Recognised by shape: core's contexts are made by createSslServerContext, and this module
  // imports nothing that reads files.
  const sslCtx = o.sslCtx ?? null;
  if (sslCtx !== null && (sslCtx as { side?: unknown }).side !== 'server')
    fail(
      'sslCtx',
      (sslCtx as { side?: unknown }).side === 'client'
        ? 'a server context (createSslServerContext), not a client context'
        : 'a context from createSslServerContext, or null',
      sslCtx,
    );

  if (o.processName !== undefined && (typeof o.processName !== 'string' || o.processName === ''))
    fail('processName', 'a non-empty string', o.processName);

  return {
    function: fn as ServerOptions['function'],
    createStream,
    announce:
      announce === true
        ? consoleWritable
        : announce === false
          ? null
          : (announce as ServerOptions['announce']),
    service,
    address,
    backlog: backlog as number | null,
    nodelay: (o.nodelay as boolean | undefined) ?? true,
    keepalive: (o.keepalive as boolean | undefined) ?? false,
    processName: (o.processName as string | undefined) ?? `${formatS(service)} server`,
    wait,
    error: (o.error as boolean | undefined) ?? !wait,
    ipv6: ipv6 as Ipv6Mode,
    reuseport: (o.reuseport as boolean | undefined) ?? false,
    proxyProtocol: proxyProtocol === false ? null : proxyProtocol === true ? 'any' : proxyProtocol,
    trustedProxies,
    proxyHeaderTimeout: proxyHeaderTimeout as number,
    sslCtx: sslCtx as SslServerContext | null,
    allowRemoteListener: (o.allowRemoteListener as boolean | undefined) ?? false,
  };
}

/** `announce: true` means standard output; console.log reaches it on every runtime. */
const consoleWritable: Writable = {
  write(text: string) {
    console.log(text.replace(/\n$/, ''));
  },
};
