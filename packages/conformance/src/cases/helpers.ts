/**
 * The helpers the case files share, one of each, named for what they do:
 *
 * - promises: `settle`, `gate`, `outcomeWithin` (the suite's `within`, which rejects on timeout,
 *   and its `freePort` are in ../suite.ts, exported by the package);
 * - servers: `serve`, `startWaiting`, `mustStart`, `mustNotStart`, `startAtOnce`, `closeAtOnce`,
 *   `serverClass`, `announceRecorder`;
 * - ports: `occupyPort`, `tryBind`, `bindable`, `connectionRefused`;
 * - clients and streams: `openStream`, `connectAndReset`, `stream`, `readAllLines`, `lineReader`,
 *   `charReader`, `writeUntilStuck`, `KiB`, `MiB`;
 * - the host: `watchUncaught`, `captureConsoleError`, `reported`.
 *
 * Helpers that only the files of one section share are in ./helpers/ (addresses, flow, tls); a
 * helper that is the shared body of one rule's cases stays next to those cases.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import process from 'node:process';
import type {
  AnyServerOptions,
  Connection,
  ListeningSocket,
  OpenTcpStreamOptions,
  ServerProcess,
  SocketStream,
  SocketStreamOptions,
  StartUpServerOptions,
  StartUpServerResult,
} from '@comm/core/backend';
import type { CaseContext } from '../suite.js';
import { rawConnect, within } from '../suite.js';

// ---- promises ----

/** A promise the case settles by hand; `settled()` says whether it has. */
export interface Settle<T> {
  readonly promise: Promise<T>;
  readonly settled: () => boolean;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise the case settles by hand (see `Settle`); a rejection nobody awaits is not unhandled. */
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
 * Resolves to what `promise` resolves to, or to `timedOut` after `ms`: an outcome to assert on
 * (the suite's `within` rejects instead).
 */
export function outcomeWithin<T, U>(promise: Promise<T>, ms: number, timedOut: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<U>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---- servers ----

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

/**
 * `startUpServer` with `wait: true` and exactly the options given (no default address, port or
 * handler, unlike `t.startServer`); a server that starts is terminated after the case.
 */
export async function startWaiting(t: CaseContext, options: AnyServerOptions): Promise<StartUpServerResult> {
  const result = await (t.api.startUpServer({
    ...options,
    wait: true,
  } as AnyServerOptions) as Promise<StartUpServerResult>);
  const [server] = result;
  if (server) t.defer(() => t.api.serverTerminate(server));
  return result;
}

/** Like `startWaiting`, but the server must start; gives what `getSocketAddress` says of its socket. */
export async function mustStart(
  t: CaseContext,
  options: AnyServerOptions,
): Promise<{ server: ServerProcess; address: unknown; port: number }> {
  const [server, condition] = await startWaiting(t, options);
  assert.ok(server, `the server did not start: ${condition?.message}`);
  const [address, port] = t.api.getSocketAddress(server.socket);
  assert.equal(typeof port, 'number', 'getSocketAddress gives the port of a listening socket');
  return { server, address, port: port as number };
}

/** Like `startWaiting`, but the server must not start; gives the startup condition. */
export async function mustNotStart(t: CaseContext, options: AnyServerOptions): Promise<Error> {
  const [server, condition] = await startWaiting(t, options);
  assert.equal(server, null, 'the server must not start');
  assert.ok(condition instanceof Error, 'a refused start resolves to [null, condition]');
  return condition;
}

/** A handler that closes each connection at once. */
export const closeAtOnce = (handle: Connection) => handle.destroy();

/** `wait: false` on loopback, a free port, `error: false` (a failure must not take the runner down); terminated after the case. */
export function startAtOnce(t: CaseContext, options: StartUpServerOptions = {}): ServerProcess {
  const server = t.api.startUpServer({
    service: 0,
    address: '127.0.0.1',
    error: false,
    function: closeAtOnce,
    ...options,
    wait: false,
  });
  t.defer(() => t.api.serverTerminate(server));
  return server;
}

/** The backend module's `ServerProcess` class (re-exported from core). */
export function serverClass(t: CaseContext): typeof ServerProcess {
  return t.api.ServerProcess as typeof ServerProcess;
}

/** One call of an announce function: `(listeningSocket, condition)`. */
export type AnnounceCall = [ListeningSocket | null, Error | null];

/** An announce function that records every call. */
export function announceRecorder(): {
  calls: AnnounceCall[];
  announce: (s: ListeningSocket | null, c: Error | null) => void;
} {
  const calls: AnnounceCall[] = [];
  return { calls, announce: (socket, condition) => void calls.push([socket, condition]) };
}

// ---- ports ----

/**
 * A plain `node:net` server holding `host` port `port` (0: any free one) that closes what it
 * accepts, closed after the case; gives its port.
 */
export function occupyPort(t: CaseContext, host = '127.0.0.1', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const holder = net.createServer((socket) => socket.destroy());
    holder.once('error', reject);
    holder.listen({ host, port, exclusive: true }, () => {
      t.defer(() => new Promise<void>((done) => holder.close(() => done())));
      resolve((holder.address() as net.AddressInfo).port);
    });
  });
}

/** Binds `port` on 127.0.0.1 with `node:net` and closes it again: 'bound', or the error's code. */
export function tryBind(port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve('bound')));
  });
}

/** True if `port` can be bound again on 127.0.0.1 (`tryBind`: it is freed at once). */
export async function bindable(port: number): Promise<boolean> {
  return (await tryBind(port)) === 'bound';
}

/** True if a connection to 127.0.0.1 `port` (with `node:net`) is refused. */
export async function connectionRefused(port: number): Promise<boolean> {
  try {
    const client = await rawConnect(port);
    client.destroy();
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

// ---- clients and streams ----

/** 1 KiB, in bytes. */
export const KiB = 1024;
/** 1 MiB, in bytes. */
export const MiB = 1024 * KiB;

/** openTcpStream with errorp true (to `host`, 127.0.0.1 by default), closed after the case. */
export async function openStream(
  t: CaseContext,
  port: number,
  options: OpenTcpStreamOptions = {},
  host = '127.0.0.1',
): Promise<SocketStream> {
  const stream = await t.api.openTcpStream(host, port, { ...options, errorp: true });
  assert.ok(stream, 'openTcpStream with errorp true resolved to null');
  t.defer(() => stream.close({ abort: true }));
  return stream;
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

/** An io SocketStream over a server's handle (with `options`). */
export function stream(
  t: CaseContext,
  handle: Connection,
  options: Omit<SocketStreamOptions, 'socket'> = {},
): SocketStream {
  return new t.api.SocketStream({ socket: handle, direction: 'io', ...options });
}

/** The lines `s` reads (at most `max`) until end of file, the null included. */
export async function readAllLines(s: SocketStream, max = 100): Promise<Array<string | null>> {
  const lines: Array<string | null> = [];
  for (let i = 0; i < max; i++) {
    const line = await s.readLine();
    lines.push(line);
    if (line === null) break;
  }
  return lines;
}

/** A server that reads `count` lines (or until end of file) and returns them. */
export function lineReader(t: CaseContext, count: number) {
  return serve(t, async (h) => readAllLines(stream(t, h), count));
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

/** Writes `total` bytes in 64 KiB pieces, awaiting each; reports how far it got and how it ended. */
export async function writeUntilStuck(
  s: SocketStream,
  total: number,
  stop: () => boolean = () => false,
  progress: (bytes: number) => void = () => {},
): Promise<{ written: number; error: unknown; lastCallMs: number }> {
  const chunk = new Uint8Array(64 * KiB).fill(0x61);
  let written = 0;
  let lastCallMs = 0;
  while (written < total && !stop()) {
    const started = performance.now();
    try {
      await s.writeSequence(chunk);
    } catch (error) {
      return { written, error, lastCallMs: performance.now() - started };
    }
    lastCallMs = performance.now() - started;
    written += chunk.length;
    progress(written);
  }
  return { written, error: null, lastCallMs };
}

// ---- the host ----

/** Records uncaught exceptions and unhandled rejections while the case runs. */
export function watchUncaught(t: CaseContext): unknown[] {
  const seen: unknown[] = [];
  const record = (error: unknown) => void seen.push(error);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  t.defer(() => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });
  return seen;
}

/** Replaces console.error for the case; what it was called with, restored afterwards. */
export function captureConsoleError(t: CaseContext): unknown[][] {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  t.defer(() => {
    console.error = original;
  });
  return calls;
}

/** True if one console.error call names `name` and carries `error` (the object or its message). */
export function reported(calls: unknown[][], name: string, error: Error): boolean {
  return calls.some((args) => {
    const text = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
    return text.includes(name) && (args.includes(error) || text.includes(error.message));
  });
}
