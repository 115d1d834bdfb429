import { bindBackend } from '@comm/core/backend';
import { bunBackend } from './backend.js';

export * from '@comm/core';
export { bunBackend as backend };

/** The contract bound to `Bun.listen` / `Bun.connect`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(bunBackend);
