// The contract's names, as a user of a backend package sees them (each backend package re-exports
// this and adds `startUpServer`, `serverTerminate` and `openTcpStream` bound to its runtime).
// What a backend author needs besides is in `@comm/core/backend`.
export {
  Ipv6Address,
  ipAddressString,
  ipv6AddressString,
  parseIpv6Address,
  stringIpAddress,
} from './address.js';
export type { OpenTcpStreamOptions } from './client.js';
export { ConnectionError, StartupCondition } from './conditions.js';
export type {
  AnnounceFunction,
  AnyServerOptions,
  StartUpServerOptions,
  StartUpStreamServerOptions,
  Writable,
} from './options.js';
export { LightweightProcess, type ProcessState, processRunFunction } from './process.js';
export {
  ServerProcess,
  type ServerState,
  type ServerTerminateOptions,
  type StartUpServerResult,
} from './server.js';
export { getServiceEntry, type ServiceEntry } from './services.js';
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
  SocketStream,
  type SocketStreamOptions,
  socketStreamAddress,
  socketStreamPeerAddress,
} from './stream.js';
export type { AddressSpec, Direction, ElementType, Ipv6Mode, Service, StreamOptions } from './validate.js';
