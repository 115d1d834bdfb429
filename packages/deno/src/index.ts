import { type Backend, bindBackend } from '@comm/core/backend';
import { denoBackend } from './backend.js';

export * from '@comm/core';
/** The backend itself, for `bindBackend` and `comm-conformance`; its type says nothing of deno's own types. */
export const backend: Backend = denoBackend;

/** The contract bound to `Deno.listen` / `Deno.connect`: the same names every backend package exports. */
export const { startUpServer, serverTerminate, openTcpStream } = bindBackend(denoBackend);
