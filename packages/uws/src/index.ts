import { type Backend, type BoundApi, bindBackend } from '@comm/core/backend';
import { createUwsBackend, type UwsBackendOptions } from './backend.js';

export * from '@comm/core';
export { isNativeUws, loadUws, type UwsBackendOptions } from './backend.js';

/** The contract on uWebSockets.js with the given module and tuning: `startUpServer` and its siblings. */
export function bindUws(options: UwsBackendOptions = {}): BoundApi {
  return bindBackend(createUwsBackend(options));
}

const bound = bindUws();

/** The backend with the uWS module found by name (`uWebSockets.js`, else `@trufflesuite/uws-js-unofficial`). */
export const backend: Backend = bound.backend;

/** The contract bound to uWebSockets.js: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bound;
