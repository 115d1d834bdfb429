/**
 * Deno's own `node:net`, for the two things `Deno.TcpConn` cannot be made for: a connection
 * accepted with FFI on a socket `Deno.listen` cannot make (`new net.Socket({ fd })`, see `ffi.ts`),
 * and a connection from a given local address or port (`Deno.connect` has no such option).
 * `@comm/node` adapts such sockets to the seam already; this reuses it.
 */
import * as net from 'node:net';
import type { Connection } from '@comm/core/backend';
import { connectNet, NodeConnection } from '@comm/node/backend';

/** A connected descriptor (from `accept4`, see `ffi.ts`), which `node:net` then owns. */
export function socketFromFd(fd: number): Connection {
  return new NodeConnection(new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true }));
}

/** Connects from a given local address and/or port, which `Deno.connect` cannot. */
export const connectFrom = connectNet;
