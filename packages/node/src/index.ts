import { type Backend, bindBackend } from '@comm/core/backend';
import { nodeBackend } from './backend.js';

export * from '@comm/core';
/** The backend itself, for `bindBackend` and `comm-conformance`; its type says nothing of node's own types. */
export const backend: Backend = nodeBackend;

/** The contract bound to `node:net`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(nodeBackend);
