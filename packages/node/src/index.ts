import { bindBackend } from '@comm/core';
import { nodeBackend } from './backend.js';

export * from '@comm/core';
export { connectNet, NodeConnection } from './backend.js';
export { nodeBackend as backend };

/** The contract bound to `node:net`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(nodeBackend);
