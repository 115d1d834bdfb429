import type { Ipv6Address } from './address.js';
import type { Backend } from './backend.js';
import { type OpenTcpStreamOptions, openTcpStream } from './client.js';
import type { AnyServerOptions, StartUpServerOptions, StartUpStreamServerOptions } from './options.js';
import { type ServerProcess, type StartUpServerResult, serverTerminate, startUpServer } from './server.js';
import type { SocketStream } from './stream.js';

export * from './address.js';
export type * from './backend.js';
export type { OpenTcpStreamOptions } from './client.js';
export { errorCode, StartupCondition } from './conditions.js';
export { admitConnection, releaseConnection } from './descriptors.js';
export type {
  AddressSpec,
  AnnounceFunction,
  AnyServerOptions,
  Ipv6Mode,
  Service,
  StartUpServerOptions,
  StartUpStreamServerOptions,
  Writable,
} from './options.js';
export { formatS } from './options.js';
export { LightweightProcess, type ProcessState, processRunFunction } from './process.js';
export { AcceptQueue, connectionClosed, type PausableSource, ReadAhead } from './push.js';
export { PullQueue } from './queue.js';
export {
  type AcceptFailureKind,
  acceptFailureKind,
  acceptFailurePolicy,
  ServerProcess,
  type ServerState,
  type StartUpServerResult,
  serverTerminate,
} from './server.js';
export { getServiceEntry, parseServices, type ServiceEntry } from './services.js';
export {
  type AddressAndPort,
  getSocketAddress,
  getSocketPeerAddress,
  type IpAddress,
  ListeningSocket,
  SocketHandle,
} from './sockets.js';
export {
  createSslClientContext,
  createSslServerContext,
  SslClientContext,
  type SslClientContextOptions,
  SslServerContext,
  type SslServerContextOptions,
} from './ssl.js';
export { type AttachSslOptions, attachSsl } from './starttls.js';
export {
  type Direction,
  type ElementType,
  SocketStream,
  type SocketStreamOptions,
  socketStreamAddress,
  socketStreamPeerAddress,
} from './stream.js';
export { LOOPBACK_SOURCES, type TrustedSources, trustedSources } from './trusted.js';

/** The part of the public API that depends on the backend, bound to one. */
export interface BoundApi {
  readonly backend: Backend;
  startUpServer(options: StartUpStreamServerOptions & { wait: true }): Promise<StartUpServerResult>;
  startUpServer(options: StartUpServerOptions & { wait: true }): Promise<StartUpServerResult>;
  startUpServer(options: StartUpStreamServerOptions & { wait?: false }): ServerProcess;
  startUpServer(options?: StartUpServerOptions & { wait?: false }): ServerProcess;
  startUpServer(options?: AnyServerOptions): ServerProcess | Promise<StartUpServerResult>;
  serverTerminate(process?: ServerProcess | null): boolean;
  openTcpStream(
    hostspec: string | number | Ipv6Address,
    service: number | string,
    options?: OpenTcpStreamOptions,
  ): Promise<SocketStream | null>;
}

/** Binds the contract to a backend: what every backend package exports. */
export function bindBackend(backend: Backend): BoundApi {
  return {
    backend,
    startUpServer: ((options?: AnyServerOptions) =>
      startUpServer(backend, options)) as BoundApi['startUpServer'],
    serverTerminate,
    openTcpStream: (hostspec, service, options) => openTcpStream(backend, hostspec, service, options),
  };
}
