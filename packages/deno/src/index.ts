import { bindBackend } from '@comm/core/backend';
import { denoBackend } from './backend.js';

export * from '@comm/core';
export { denoBackend as backend };

/** The contract bound to `Deno.listen` / `Deno.connect`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(denoBackend);
