/**
 * The helpers the case files share: promises a case settles by hand, a gate that holds a handler,
 * a server whose handlers' outcomes the case asserts on, a stream over a handle, and clients that
 * connect and reset.
 */
import * as net from 'node:net';
import type { Connection, SocketStream, SocketStreamOptions, StartUpServerOptions } from '@comm/core/backend';
import type { CaseContext } from '../suite.js';
import { within } from '../suite.js';

export interface Settle<T> {
  readonly promise: Promise<T>;
  readonly settled: () => boolean;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function settle<T = void>(): Settle<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  let done = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = (value) => {
      done = true;
      res(value);
    };
    reject = (error) => {
      done = true;
      rej(error);
    };
  });
  // Not awaiting it (a case that failed earlier) is no unhandled rejection.
  promise.catch(() => {});
  return { promise, settled: () => done, resolve, reject };
}

/** A promise the case opens; opened anyway after the case, so that no handler waits for ever. */
export function gate(t: CaseContext): { promise: Promise<void>; open: () => void } {
  const g = settle<void>();
  t.defer(() => g.resolve());
  return { promise: g.promise, open: () => g.resolve() };
}

/**
 * A server whose n-th connection runs `bodies[n]` (the last one for any later connection). What a
 * body returns or throws is the n-th result: the case asserts on it, so that a failed check in the
 * handler fails the case and not the server. A body that throws has its connection destroyed.
 */
export async function serve(
  t: CaseContext,
  handlers:
    | ((handle: Connection) => Promise<unknown>)
    | ReadonlyArray<(handle: Connection) => Promise<unknown>>,
  options: StartUpServerOptions = {},
): Promise<{ port: number; result: (n?: number, ms?: number) => Promise<unknown> }> {
  const results: Array<Settle<unknown>> = [];
  const slot = (n: number) => {
    while (results.length <= n) results.push(settle());
    return results[n] as Settle<unknown>;
  };
  const bodies = typeof handlers === 'function' ? [handlers] : handlers;
  let calls = 0;
  const { port } = await t.startServer({
    ...options,
    function: async (handle: Connection) => {
      const n = calls++;
      const body = bodies[Math.min(n, bodies.length - 1)] as (handle: Connection) => Promise<unknown>;
      try {
        slot(n).resolve(await body(handle));
      } catch (error) {
        handle.destroy();
        slot(n).reject(error);
      }
    },
  });
  return {
    port,
    result: (n = 0, ms = 5000) => within(slot(n).promise, ms, `the end of the handler of connection ${n}`),
  };
}

export function stream(
  t: CaseContext,
  handle: Connection,
  options: Omit<SocketStreamOptions, 'socket'> = {},
): SocketStream {
  return new t.api.SocketStream({ socket: handle, direction: 'io', ...options });
}

/** A server that reads characters (at most 64) until end of file, and returns them with the null. */
export function charReader(t: CaseContext) {
  return serve(t, async (h) => {
    const s = stream(t, h);
    const chars: Array<string | null> = [];
    for (let i = 0; i < 64; i++) {
      const c = await s.readChar();
      chars.push(c);
      if (c === null) break;
    }
    return chars;
  });
}

/** `n` clients that connect to 127.0.0.1:`port` and reset at once (a port scanner). */
export function connectAndReset(port: number, n: number): Promise<unknown> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port }, () => {
            // A reset (SO_LINGER 0) where this runtime's node:net can; a close where it cannot.
            if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
            else socket.destroy();
            resolve();
          });
          socket.on('error', () => resolve());
        }),
    ),
  );
}
