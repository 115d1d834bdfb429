import { bindBackend } from '@comm/core/backend';
import { nodeBackend } from './backend.js';

export * from '@comm/core';
export { nodeBackend as backend };

/** The contract bound to `node:net`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(nodeBackend);
