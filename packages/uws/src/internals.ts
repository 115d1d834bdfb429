// `@comm/uws/backend`: the adapter's parts, for tests, benchmarks and whoever builds on them.

export type * from '@comm/core/backend';
export {
  createUwsBackend,
  isNativeUws,
  loadUws,
  type UwsBackendOptions,
  uwsDeviations,
} from './backend.js';
export { connectWs, WsConnection, WssConnection } from './client.js';
export * from './index.js';
export * as protocol from './protocol.js';
export { UwsConnection, UwsListener, UwsTlsConnection } from './server.js';
export {
  type CommStreamTransport,
  type ConformanceTransportOptions,
  conformanceTransport,
} from './transport.js';
export type * from './uws-types.js';
