import { type BoundApi, bindBackend } from '@comm/core';
import { createUwsBackend, type UwsBackendOptions } from './backend.js';

export * from '@comm/core';
export {
  createUwsBackend,
  isNativeUws,
  loadUws,
  type UwsBackendOptions,
  uwsDeviations,
} from './backend.js';
export { connectWs, WsConnection, WssConnection } from './client.js';
export * as protocol from './protocol.js';
export { UwsConnection, UwsListener, UwsTlsConnection } from './server.js';
export {
  type CommStreamTransport,
  type ConformanceTransportOptions,
  conformanceTransport,
} from './transport.js';
export type * from './uws-types.js';

/** The contract on uWebSockets.js with the given module and tuning: `startUpServer` and its siblings. */
export function bindUws(options: UwsBackendOptions = {}): BoundApi {
  return bindBackend(createUwsBackend(options));
}

const bound = bindUws();

/** The backend with the uWS module found by name (`uWebSockets.js`, else `@trufflesuite/uws-js-unofficial`). */
export const backend = bound.backend;

/** The contract bound to uWebSockets.js: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bound;
