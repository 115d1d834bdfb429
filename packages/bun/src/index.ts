import { type Backend, bindBackend } from '@comm/core/backend';
import { bunBackend } from './backend.js';

export * from '@comm/core';
/** The backend itself, for `bindBackend` and `comm-conformance`; its type says nothing of bun's own types. */
export const backend: Backend = bunBackend;

/** The contract bound to `Bun.listen` / `Bun.connect`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(bunBackend);
