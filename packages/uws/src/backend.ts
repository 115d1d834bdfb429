import { createRequire } from 'node:module';
import * as net from 'node:net';
import type { Backend, Connection, ConnectSpec, Deviation, Listener, ListenSpec } from '@comm/core/backend';
import { connectWs } from './client.js';
import { MAX_CLIENT_MESSAGE } from './protocol.js';
import { listenUws, type ServerTuning } from './server.js';
import {
  CLIENT_CERTIFICATE_UNSUPPORTED,
  CLIENT_CERTIFICATE_UPSTREAM,
  checkServerTls,
  HANDSHAKE_TIMEOUT_UNSUPPORTED,
  HANDSHAKE_TIMEOUT_UPSTREAM,
  STARTTLS_UNSUPPORTED,
  STARTTLS_UPSTREAM,
} from './tls.js';
import type { UwsApp, UwsModule } from './uws-types.js';

export interface UwsBackendOptions {
  /**
   * The uWebSockets.js module (`require('uWebSockets.js')`), or a function that gives it. By
   * default the first of `uWebSockets.js` and `@trufflesuite/uws-js-unofficial` that loads.
   */
  uws?: UwsModule | (() => UwsModule | Promise<UwsModule>);
  /** The largest message a client may send (uWS's maxPayloadLength); at least 64 KiB. Default 1 MiB. */
  maxPayloadLength?: number;
  /** The largest message the server sends: writes are split into messages of this size. Default 64 KiB. */
  sendChunk?: number;
  /** Bytes uWS may hold for a connection before a write waits for its drain; 0 keeps R16a exactly. Default 256 KiB. */
  highWater?: number;
  /**
   * Seconds of silence after which uWS pings a connection, and closes it if the ping is not
   * answered: how dead peers are found (uWS has no SO_KEEPALIVE). 0 never closes an idle
   * connection; else 8 to 960 (uWS's limits). Default 120. Reading without input is `readTimeout`'s
   * business, in core.
   */
  idleTimeout?: number;
  /**
   * Adds HTTP routes to each uWS app the backend opens (a page beside the WebSocket endpoint).
   * A route on a path WebSocket clients use must let upgrade requests through with
   * `req.setYield(true)`.
   */
  routes?: (app: UwsApp) => void;
  /**
   * TLS listeners: how many distinct SNI names (each one the certificate covers) a listener
   * learns, so that its connections' `tls.servername` says which one the client asked for. uWS
   * tells a handler the name only by routing to a router given for it (`addServerName`,
   * `domain`), which is added the first time a client asks for the name and cannot be removed
   * while the listener lives; uWS v20.30 prints two lines on standard output for each. 0: no
   * names learned, `servername` is null. Default 16.
   */
  serverNames?: number;
}

const MODULE_NAMES = ['uWebSockets.js', '@trufflesuite/uws-js-unofficial'];

/** Loads uWebSockets.js by its package names; the error names each that was tried. */
export function loadUws(): UwsModule {
  const require = createRequire(import.meta.url);
  const problems: string[] = [];
  for (const name of MODULE_NAMES) {
    try {
      return require(name) as UwsModule;
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `@comm/uws: no uWebSockets.js module could be loaded (pass one as the "uws" option):\n  ${problems.join('\n  ')}`,
  );
}

/** True for a native uWS build; the unofficial package falls back to a JavaScript imitation when its binary does not load. */
export function isNativeUws(uws: UwsModule): boolean {
  return typeof (uws as { getParts?: unknown }).getParts === 'function';
}

/** R21: what the PROXY protocol needs and uWS does not give; a server that asks for it does not start. */
const PROXY_PROTOCOL_UNSUPPORTED =
  "the connection's bytes reach this backend inside WebSocket messages, after an HTTP upgrade that uWS parses itself, so a load balancer's PROXY header never reaches core; uWebSockets.js v20.30 parses v2 headers itself (HttpResponse.getProxiedRemoteAddress) but gives no client port, no destination, no v1 (uWebSockets#1715) and no list of trusted sources, so a server asking for proxyProtocol does not start";

/**
 * Where this backend cannot keep the contract. The suite reports these cases as deviations, with
 * the reason and where upstream says so.
 */
export const uwsDeviations: readonly Deviation[] = [
  {
    cases: ['R9'],
    reason:
      'uWebSockets.js listens with a fixed backlog of 512 (uSockets bsd_create_listen_socket calls listen(fd, 512)) and takes no backlog option, so the kernel never reports the backlog the caller chose',
    upstream: 'https://github.com/uNetworking/uSockets/blob/master/src/bsd.c',
  },
  {
    cases: ['R10.nodelay-false'],
    reason:
      "uWebSockets.js sets TCP_NODELAY on every socket it accepts (uSockets loop.c: 'make sure to always set nodelay') and exposes neither a way to clear it nor the socket's descriptor",
    upstream: 'https://github.com/uNetworking/uSockets/blob/master/src/loop.c',
  },
  {
    cases: ['R10.keepalive-true'],
    reason:
      "uWebSockets.js has no SO_KEEPALIVE for accepted sockets and no access to their descriptor; upstream's answer is WebSocket pings, which this backend's idleTimeout option turns on",
    upstream: 'https://github.com/uNetworking/uWebSockets/issues/230',
  },
  {
    cases: ['R8.true-ipv6-only'],
    reason:
      'uSockets always clears IPV6_V6ONLY, so a uWS socket on :: takes IPv4 connections in the kernel; the backend turns them away at the WebSocket upgrade (HTTP 403), so they never reach `function`, but the TCP connection is not refused',
    upstream: 'https://github.com/uNetworking/uSockets/blob/master/src/bsd.c',
  },
  {
    cases: [
      'R21.v1-addresses',
      'R21.v2-addresses',
      'R21.local-and-unknown-are-real',
      'R21.untrusted-closed',
      'R21.malformed-closed',
      'R21.header-timeout',
      'R21.silent-holds-up-nobody',
      'R21.split-header',
      'R21.calls-stay-sequential',
    ],
    reason: PROXY_PROTOCOL_UNSUPPORTED,
    upstream: 'https://github.com/uNetworking/uWebSockets/issues/1715',
  },
  {
    cases: ['R22.client-certificate'],
    reason: CLIENT_CERTIFICATE_UNSUPPORTED,
    upstream: CLIENT_CERTIFICATE_UPSTREAM,
  },
  {
    cases: ['R22.starttls-client', 'R22.starttls-server'],
    reason: `${STARTTLS_UNSUPPORTED}; startTls throws ENOTSUP`,
    upstream: STARTTLS_UPSTREAM,
  },
  {
    cases: ['R22.server-handshake-timeout'],
    reason: HANDSHAKE_TIMEOUT_UNSUPPORTED,
    upstream: HANDSHAKE_TIMEOUT_UPSTREAM,
  },
];

/** Why uWS could not listen: uWS says only `false`, so the same bind is tried with node:net for the kernel's errno. */
function listenError(spec: ListenSpec): Promise<Error> {
  // The same bind works for node:net: uWS failed for a reason of its own (it gives none).
  const fallback = () =>
    new Error(`uWebSockets.js could not listen on ${spec.host} port ${spec.port} (node:net could)`);
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error) => resolve(error));
    probe.listen({ host: spec.host, port: spec.port, exclusive: true, ipv6Only: spec.ipv6Only }, () =>
      probe.close(() => resolve(fallback())),
    );
  });
}

/** A port the system gives for `spec`'s address (bound with node:net, then released). */
function freePort(spec: ListenSpec): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host: spec.host, port: 0, exclusive: true, ipv6Only: spec.ipv6Only }, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** `@comm/core`'s backend on uWebSockets.js, with the uWS module and tuning of `options`. */
export function createUwsBackend(options: UwsBackendOptions = {}): Backend {
  const maxPayloadLength = options.maxPayloadLength ?? 1024 * 1024;
  if (!Number.isInteger(maxPayloadLength) || maxPayloadLength < MAX_CLIENT_MESSAGE)
    throw new TypeError(`@comm/uws: maxPayloadLength must be an integer of at least ${MAX_CLIENT_MESSAGE}`);
  const sendChunk = options.sendChunk ?? 64 * 1024;
  const highWater = options.highWater ?? 256 * 1024;
  const idleTimeout = options.idleTimeout ?? 120;
  const serverNames = options.serverNames ?? 16;
  if (!Number.isInteger(sendChunk) || sendChunk <= 0)
    throw new TypeError(`@comm/uws: sendChunk must be a positive integer, not ${sendChunk}`);
  // 0: a write waits whenever uWS holds anything, as the contract's R16a bound has it.
  if (!Number.isInteger(highWater) || highWater < 0)
    throw new TypeError(`@comm/uws: highWater must be an integer of 0 or more, not ${highWater}`);
  // uWS aborts the process (not a JavaScript error) for other values.
  if (!Number.isInteger(idleTimeout) || (idleTimeout !== 0 && (idleTimeout < 8 || idleTimeout > 960)))
    throw new TypeError(`@comm/uws: idleTimeout must be 0 or 8-960 seconds, not ${idleTimeout}`);
  if (!Number.isInteger(serverNames) || serverNames < 0)
    throw new TypeError(`@comm/uws: serverNames must be an integer of 0 or more, not ${serverNames}`);
  const tuning: ServerTuning = {
    maxPayloadLength,
    sendChunk,
    highWater,
    idleTimeout,
    routes: options.routes,
    serverNames,
  };
  let module: Promise<UwsModule> | null = null;
  const uws = (): Promise<UwsModule> => {
    const given = options.uws;
    module ??= Promise.resolve(typeof given === 'function' ? given() : (given ?? loadUws()));
    return module;
  };
  return {
    name: 'uws',
    deviations: uwsDeviations,
    proxyProtocolUnsupported: PROXY_PROTOCOL_UNSUPPORTED,

    async listen(spec: ListenSpec): Promise<Listener> {
      const module = await uws();
      if (spec.tls !== undefined) checkServerTls(module, spec.tls);
      if (spec.port !== 0) {
        const listener = await listenUws(module, spec, tuning);
        if (listener) return listener;
        throw await listenError(spec);
      }
      // uSockets sets SO_REUSEADDR only when given a port: with port 0 its accepted sockets (and their
      // TIME_WAIT) would keep the port from being bound again after serverTerminate (R15). So the
      // system's free port is asked for here, and given to uWS; another process may take it meanwhile.
      let last: Error | null = null;
      for (let attempt = 0; attempt < 5; attempt++) {
        const port = await freePort(spec);
        const listener = await listenUws(module, { ...spec, port }, tuning);
        if (listener) return listener;
        last = await listenError({ ...spec, port });
        if ((last as { code?: unknown }).code !== 'EADDRINUSE') break;
      }
      throw last;
    },

    connect(spec: ConnectSpec): Promise<Connection> {
      return connectWs(spec);
    },
  };
}
