import { Ipv6Address } from './address.js';
import type { ProxyVersion } from './proxy-header.js';
import type { ListeningSocket, SocketHandle } from './sockets.js';
import type { SslServerContext } from './ssl.js';
import type { SocketStream } from './stream.js';
import { LOOPBACK_SOURCES, type TrustedSources, trustedSources } from './trusted.js';
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
  type StreamSettings,
  streamOptionNames,
  synonym,
} from './validate.js';

/** Anything with `write(string)`: a Node stream, a Deno/Bun writer wrapper, an array collector. */
export interface Writable {
  write(text: string): unknown;
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

function fail(option: string, expected: string, value: unknown): never {
  throw new TypeError(`startUpServer: option "${option}" must be ${expected}, not ${describe(value)}`);
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
