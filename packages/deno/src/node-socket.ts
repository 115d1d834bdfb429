/**
 * Deno's own `node:net`, for the two things `Deno.TcpConn` cannot be made for: a connection
 * accepted with FFI on a socket `Deno.listen` cannot make (`new net.Socket({ fd })`, see `ffi.ts`),
 * and a connection from a given local address or port (`Deno.connect` has no such option).
 * Push-style sockets become pull-style through core's `PullQueue`, with backpressure, as in `@comm/node`.
 */
import * as net from 'node:net';
import type { Connection, SocketAddress } from '@comm/core';
import { PullQueue } from '@comm/core';

function addressOf(address: string | undefined, port: number | undefined): SocketAddress {
  const text = address ?? '';
  return { address: text, port: port ?? 0, family: text.includes(':') ? 6 : 4 };
}

/** Chunks a connection may queue before its socket is paused. */
const READ_AHEAD_CHUNKS = 16;

class NodeSocketConnection implements Connection {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly #socket: net.Socket;
  readonly #incoming: PullQueue<Uint8Array>;
  #error: Error | null = null;
  #drained: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.local = addressOf(socket.localAddress, socket.localPort);
    this.remote = addressOf(socket.remoteAddress, socket.remotePort);
    this.#incoming = new PullQueue({
      highWater: READ_AHEAD_CHUNKS,
      onLow: () => {
        if (socket.isPaused()) socket.resume();
      },
    });
    socket.pause();
    socket.on('data', (chunk: Buffer) => {
      if (!this.#incoming.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))) socket.pause();
    });
    socket.on('end', () => this.#incoming.end());
    socket.on('drain', () => this.#settleDrain(null));
    socket.on('close', () => {
      this.#incoming.end();
      this.#settleDrain(this.#error ?? new Error('the connection closed before the write completed'));
    });
    socket.on('error', (error) => {
      this.#error = error;
      this.#incoming.end();
    });
  }

  #settleDrain(error: Error | null): void {
    const waiter = this.#drained;
    this.#drained = null;
    if (!waiter) return;
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  read(): Promise<Uint8Array | null> {
    return this.#incoming.pull();
  }

  write(chunk: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded)
      return Promise.reject(this.#error ?? new Error('write on a closed connection (EPIPE)'));
    if (socket.write(chunk)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drained = { resolve, reject };
    });
  }

  end(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => socket.end(resolve));
  }

  destroy(): void {
    this.#socket.destroy();
    this.#incoming.end();
  }

  setNoDelay(on: boolean): void {
    this.#socket.setNoDelay(on);
  }

  setKeepAlive(on: boolean): void {
    this.#socket.setKeepAlive(on);
  }
}

/** A connected descriptor (from `accept4`, see `ffi.ts`), which `node:net` then owns. */
export function socketFromFd(fd: number): Connection {
  return new NodeSocketConnection(
    new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true }),
  );
}

/** Connects from a given local address and/or port, which `Deno.connect` cannot. */
export function connectFrom(spec: {
  host: string;
  port: number;
  family: 4 | 6;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      allowHalfOpen: true,
      host: spec.host,
      port: spec.port,
      family: spec.family,
      ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
      ...(spec.localPort !== undefined ? { localPort: spec.localPort } : {}),
    });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(new NodeSocketConnection(socket));
    });
  });
}
